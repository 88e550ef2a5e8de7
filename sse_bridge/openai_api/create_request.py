"""`POST /v1/responses` and `POST /v1/chat/completions` bodies: what this server takes, checked, and turned into
the job's SubmitJobRequest. A field it does not take is refused naming it (never silently ignored)."""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobstream.pipelines import ChatTemplate, Pipelines
from jobstream.v1.job_pb2 import GenerationParams
from jobstream.v1.job_service_pb2 import SubmitJobRequest

Role = Literal["system", "developer", "user", "assistant"]
MAX_TOKENS = 2**31 - 1  # what the job's request can carry; the JobService says the real limit, naming the field
NOT_IMPLEMENTED = ("tools", "tool_choice", "reasoning", "previous_response_id", "conversation", "prompt", "include")


class BadParam(ValueError):
    def __init__(self, param: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextPart(_Strict):
    type: Literal["input_text", "output_text", "text"]
    text: str
    # A previous response's output passed back as input carries these; they do not reach the prompt.
    annotations: list[object] | None = None
    logprobs: list[object] | None = None


class Message(_Strict):
    role: Role
    content: str | list[TextPart]
    type: Literal["message"] = "message"
    name: str | None = None  # chat messages may name their author; it does not reach the prompt
    id: str | None = None  # as a previous response's output item has them
    status: str | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class Sampling(_Strict):
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    seed: Annotated[int, Field(ge=0, lt=2**32)] | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    store: bool | None = None
    user: str | None = None  # an end-user id for abuse tracking: accepted, not kept
    metadata: Annotated[dict[str, str], Field(max_length=16)] | None = None  # kept with the job (checked there too)

    def params(self, max_tokens: int | None) -> GenerationParams:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return GenerationParams(
            max_tokens=max_tokens or 0, temperature=self.temperature, top_p=self.top_p, seed=self.seed, stop=stop
        )


class ResponseRequest(Sampling):
    model: str
    input: str | list[Message]
    instructions: str | None = None
    background: bool = False
    stream: bool = False
    max_output_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS)] | None = None

    def messages(self) -> list[Message]:
        given = [Message(role="user", content=self.input)] if isinstance(self.input, str) else list(self.input)
        return [Message(role="system", content=self.instructions), *given] if self.instructions else given


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatRequest(Sampling):
    model: str
    messages: Annotated[list[Message], Field(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS)] | None = None
    n: Literal[1] = 1


Body = TypeVar("Body", bound=BaseModel)
# What pydantic puts in an error location for a union's branch: a type, not a field.
TYPE_TAGS = frozenset({"str", "int", "float", "bool"})


def parsed(kind: type[Body], body: object) -> Body:
    """`body` as `kind`, or BadParam naming the first field at fault (an unknown one: not supported)."""
    try:
        return kind.model_validate(body)
    except ValidationError as exc:
        # The most specific error: of a union, the branch that got furthest (a list of messages over a string).
        first = max(exc.errors(), key=lambda error: len(error["loc"]))
        param = ".".join(str(p) for p in first["loc"] if not (str(p) in TYPE_TAGS or "[" in str(p))) or "body"
        if first["type"] == "extra_forbidden":
            what = "is not implemented by this server" if param in NOT_IMPLEMENTED else "is not supported"
            raise BadParam(param, f"Unsupported parameter: '{param}' {what}.", "unsupported_parameter") from exc
        raise BadParam(param, f"Invalid value for '{param}': {first['msg']}.", "invalid_value") from exc


def pipeline_of(model: str, pipelines: Pipelines, served: set[str]) -> str:
    """The pipeline a `model` names: one with a single model stage, whose model this deployment serves."""
    if model not in pipelines.names():
        raise BadParam(
            "model", f"The model '{model[:64]}' does not exist; GET /v1/models lists them.", "model_not_found"
        )
    stages = pipelines.model_stages(model)
    if len(stages) != 1 or (served and stages[0] not in served):
        raise BadParam("model", f"The model '{model}' is not served by this API.", "model_not_found")
    return model


def prompt_of(messages: list[Message], template: ChatTemplate) -> str:
    """The messages through the model's chat template (developer messages are system ones)."""
    formats = {"system": template.system, "developer": template.system, "user": template.user}
    rendered = [formats.get(m.role, template.assistant).replace("{content}", m.text()) for m in messages]
    return "".join(rendered) + template.generation_prompt


def submit_request(
    pipeline: str,
    messages: list[Message],
    template: ChatTemplate,
    sampling: Sampling,
    max_tokens: int | None,
    idempotency_key: str,
    metadata: dict[str, str] | None = None,
) -> SubmitJobRequest:
    if sampling.store is False:
        raise BadParam("store", "Every response is stored here (it is a durable job): omit 'store' or send true.")
    return SubmitJobRequest(
        pipeline=pipeline,
        prompt=prompt_of(messages, template),
        params=sampling.params(max_tokens),
        idempotency_key=idempotency_key,
        metadata=metadata or {},
    )
