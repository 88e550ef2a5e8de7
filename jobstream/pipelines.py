"""Load and validate the declared pipelines (jobstream/pipelines.yaml); a bad file fails naming its line."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PIPELINES_FILE = Path(__file__).with_name("pipelines.yaml")
CPU_QUEUE = "jobstream-cpu"
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")  # ASCII digits only: \d would take any script's
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


Resume = Literal["continue", "restart"]


class PipelineFileError(ValueError):
    pass


def model_queue(model: str) -> str:
    return f"jobstream-gpu-{model}"


def parse_duration(value: object) -> object:
    """Go-style strings (500ms, 10s, 5m, 1h) become timedeltas; anything else is left to pydantic, which
    also reads the ISO 8601 form that pydantic itself writes when a resolved stage crosses Temporal."""
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
        if not value.startswith("P"):
            raise ValueError(f"{value!r} is not a duration such as 500ms, 10s, 5m or 1h")
    elif isinstance(value, int | float):
        # pydantic would read a bare number as seconds: `initial_interval: 500` is too easily meant as ms.
        raise ValueError(f"{value!r} has no unit; write a duration such as 500ms, 10s, 5m or 1h")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Strict):
    schedule_to_start: timedelta
    start_to_close: timedelta
    heartbeat: timedelta | None = None

    @field_validator("schedule_to_start", "start_to_close", "heartbeat", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value)


class Retry(_Strict):
    maximum_attempts: int = Field(ge=1, le=100)
    initial_interval: timedelta
    backoff_coefficient: float = Field(ge=1.0, le=10.0)
    maximum_interval: timedelta
    non_retryable: tuple[str, ...] = ()

    @field_validator("initial_interval", "maximum_interval", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value)


class StageDefaults(_Strict):
    timeouts: Timeouts
    retry: Retry


class Defaults(_Strict):
    cpu_stage: StageDefaults
    model_stage: StageDefaults


class Stage(_Strict):
    name: str
    kind: Literal["preprocess", "model", "postprocess"]
    model: str | None = None
    queue: str | None = None
    timeouts: Timeouts | None = None
    retry: Retry | None = None
    # Forwarded to Triton as request parameters (e.g. token_delay_ms, fail_at_token, fail_attempts).
    parameters: dict[str, int | float | str | bool] = {}
    # How a retried model attempt goes on after the tokens already delivered: `continue` sends the input
    # followed by them and asks for the rest (what an LLM does); `restart` sends the input again and skips
    # as many tokens (for a deterministic model whose output does not continue its input).
    resume: Resume = "continue"
    # A short CPU stage may run as a local activity inside the workflow's own task: no dispatch through a task
    # queue, and its events go out with it. The price: a worker that dies inside it is noticed by the workflow
    # task's timeout (10 s) rather than the stage's heartbeat, so long stages stay remote.
    local: bool = False

    @model_validator(mode="after")
    def _model_matches_kind(self) -> Stage:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"stage name {self.name!r} must be lower-case letters, digits and dashes")
        if (self.kind == "model") != (self.model is not None):
            raise ValueError("a stage names a model exactly when its kind is 'model'")
        if self.local and (self.kind == "model" or self.queue is not None):
            raise ValueError("only a CPU stage without its own queue can be local (it runs in the workflow's worker)")
        return self


class Pipeline(_Strict):
    description: str = ""
    # A fault drill (injected failures, slow stages): offered only where JOBSTREAM_DRILLS allows it.
    drill: bool = False
    stages: tuple[Stage, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _shape(self) -> Pipeline:
        kinds = [stage.kind for stage in self.stages]
        if "model" not in kinds:
            raise ValueError("a pipeline needs at least one model stage")
        names = [stage.name for stage in self.stages]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"stage names must be unique within a pipeline; repeated: {', '.join(twice)}")
        return self


class ChatTemplate(_Strict):
    """How chat messages become the model's prompt (Triton's vLLM backend applies no template of its own): each
    message through its role's format, `{content}` standing for its text, then the generation prompt."""

    system: str = "{content}\n\n"
    user: str = "{content}\n"
    assistant: str = "{content}\n"
    generation_prompt: str = ""


class ModelSpec(_Strict):
    # The longest input the model takes (as vLLM's max_model_len, in bytes): a longer one is refused at
    # SubmitJob rather than left to fail, or to take a worker's memory, at the model stage.
    max_input_bytes: int = Field(ge=1)
    chat_template: ChatTemplate = ChatTemplate()


class PipelineFile(_Strict):
    defaults: Defaults
    models: dict[str, ModelSpec] = {}
    pipelines: dict[str, Pipeline] = Field(min_length=1)


class ResolvedStage(BaseModel):
    """A stage with every default applied: what the workflow receives, so replay never rereads the file."""

    # It crosses Temporal: a worker must read what a newer JobService writes (a field it does not know yet
    # is ignored), or a rolling upgrade that reaches the front door first stops every new job.
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    kind: Literal["preprocess", "model", "postprocess"]
    model: str | None
    queue: str
    timeouts: Timeouts
    retry: Retry
    parameters: dict[str, int | float | str | bool] = {}
    resume: Resume = "continue"
    local: bool = False


class Pipelines:
    def __init__(self, spec: PipelineFile) -> None:
        self.spec = spec

    def names(self) -> list[str]:
        return sorted(self.spec.pipelines)

    def is_drill(self, name: str) -> bool:
        return self.spec.pipelines[name].drill

    def models(self, pipeline: str | None = None) -> set[str]:
        """The models `pipeline` needs, or that any pipeline does."""
        chosen = [self.spec.pipelines[pipeline]] if pipeline is not None else self.spec.pipelines.values()
        return {s.model for p in chosen for s in p.stages if s.model}

    def model_stages(self, pipeline: str) -> list[str]:
        """The models of `pipeline`'s model stages, in order (KeyError for an unknown pipeline)."""
        return [stage.model for stage in self.spec.pipelines[pipeline].stages if stage.model]

    def chat_template(self, model: str) -> ChatTemplate:
        spec = self.spec.models.get(model)
        return spec.chat_template if spec else ChatTemplate()

    def input_limit(self, pipeline: str) -> tuple[int, str] | None:
        """(bytes, model): the longest input every model of `pipeline` takes, and the model that sets it."""
        limits = [
            (spec.max_input_bytes, model) for model in self.models(pipeline) if (spec := self.spec.models.get(model))
        ]
        return min(limits) if limits else None

    def resolve(self, name: str) -> list[ResolvedStage]:
        """KeyError for an unknown pipeline."""
        resolved = []
        for stage in self.spec.pipelines[name].stages:
            defaults = self.spec.defaults.model_stage if stage.model else self.spec.defaults.cpu_stage
            queue = stage.queue or (model_queue(stage.model) if stage.model else CPU_QUEUE)
            resolved.append(
                ResolvedStage(
                    name=stage.name,
                    kind=stage.kind,
                    model=stage.model,
                    queue=queue,
                    timeouts=stage.timeouts or defaults.timeouts,
                    retry=stage.retry or defaults.retry,
                    parameters=stage.parameters,
                    resume=stage.resume,
                    local=stage.local,
                )
            )
        return resolved


def _line_of(node: yaml.Node, location: tuple[int | str, ...]) -> int:
    """1-based line of the deepest YAML node on a validation error's path."""
    line = node.start_mark.line
    for part in location:
        if isinstance(node, yaml.MappingNode):
            entry = next(((k, v) for k, v in node.value if getattr(k, "value", None) == str(part)), None)
            if entry is None:
                break
            # A mapping entry is where its key is: a block value only starts on the next line.
            line, node = entry[0].start_mark.line, entry[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    return line + 1


def parse(text: str, source: str = "<pipelines>") -> Pipelines:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        # An unclosed bracket is found lines later: say where the construct began, too.
        context = f" ({exc.context} at line {exc.context_mark.line + 1})" if exc.context and exc.context_mark else ""
        raise PipelineFileError(f"{source}:{line}: {exc.problem}{context}") from exc
    if root is None or not isinstance(data, dict):
        raise PipelineFileError(f"{source}:1: expected a mapping with 'defaults' and 'pipelines'")
    try:
        spec = PipelineFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise PipelineFileError(f"{source}:{_line_of(root, error['loc'])}: {where}: {error['msg']}") from exc
    for name in spec.pipelines:
        if not _NAME.fullmatch(name):
            raise PipelineFileError(f"{source}:{_line_of(root, ('pipelines', name))}: bad pipeline name {name!r}")
    declared = {stage.model for pipeline in spec.pipelines.values() for stage in pipeline.stages if stage.model}
    for name in spec.models:
        if name not in declared:
            raise PipelineFileError(f"{source}:{_line_of(root, ('models', name))}: no pipeline uses the model {name!r}")
    return Pipelines(spec)


@lru_cache(maxsize=1)
def load_pipelines(path: Path = PIPELINES_FILE) -> Pipelines:
    return parse(path.read_text(), str(path))
