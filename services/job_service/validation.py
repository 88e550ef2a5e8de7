"""Request validation: every rejected field is refused naming it (InvalidField, or TooLarge for an input)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from jobstream import untrusted_text
from jobstream.pipelines import Pipelines
from jobstream.settings import Settings
from jobstream.v1.job_pb2 import GenerationParams
from jobstream.v1.job_service_pb2 import SubmitJobRequest
from services.job_service.errors import InvalidField, TooLarge

JOB_ID = re.compile(r"^job_[a-z2-7]{26}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
MAX_TOKENS_LIMIT = 4096
DEFAULT_MAX_TOKENS = 64
DEFAULT_TEMPERATURE = 0.8
DEFAULT_PIPELINE = "generate"
MAX_PAGE_SIZE = 100
MAX_STOP_SEQUENCES = 4
MAX_STOP_LENGTH = 64
MAX_METADATA = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


@dataclass(frozen=True)
class ValidParams:
    max_tokens: int
    temperature: float
    seed: int | None
    top_p: float
    stop: tuple[str, ...]


@dataclass(frozen=True)
class ValidSubmit:
    pipeline: str
    prompt: str | None
    input_ref: str | None
    params: ValidParams
    idempotency_key: str
    metadata: dict[str, str] = field(default_factory=dict)


def check_job_id(job_id: str) -> str:
    if not JOB_ID.fullmatch(job_id):  # fullmatch: `$` alone lets a trailing newline through
        raise InvalidField("job_id", "must look like job_ followed by 26 characters [a-z2-7]")
    return job_id


def check_params(params: GenerationParams) -> ValidParams:
    max_tokens = params.max_tokens or DEFAULT_MAX_TOKENS
    if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise InvalidField(
            "params.max_tokens", f"must be between 1 and {MAX_TOKENS_LIMIT} (0 means {DEFAULT_MAX_TOKENS})"
        )
    temperature = params.temperature if params.HasField("temperature") else DEFAULT_TEMPERATURE
    if not 0.0 <= temperature <= 2.0:  # also false for NaN
        raise InvalidField("params.temperature", "must be between 0 and 2")
    seed = params.seed if params.HasField("seed") else None
    top_p = params.top_p if params.HasField("top_p") else 1.0
    if not 0.0 < top_p <= 1.0:  # also false for NaN
        raise InvalidField("params.top_p", "must be greater than 0 and at most 1")
    if len(params.stop) > MAX_STOP_SEQUENCES:
        raise InvalidField("params.stop", f"at most {MAX_STOP_SEQUENCES} stop sequences")
    for stop in params.stop:
        if not 1 <= len(stop) <= MAX_STOP_LENGTH:
            raise InvalidField("params.stop", f"each stop sequence must be 1 to {MAX_STOP_LENGTH} characters")
    return ValidParams(max_tokens, temperature, seed, top_p, tuple(params.stop))


def check_submit(request: SubmitJobRequest, pipelines: Pipelines, settings: Settings) -> ValidSubmit:
    pipeline = check_pipeline(request.pipeline or DEFAULT_PIPELINE, pipelines, settings)
    which = request.WhichOneof("input")
    prompt: str | None = None
    input_ref: str | None = None
    if which == "prompt":
        prompt = check_prompt(request.prompt, pipeline, pipelines, settings)
    elif which == "input_ref":
        if not request.input_ref:
            raise InvalidField("input_ref", "must not be empty")
        input_ref = request.input_ref
    else:
        raise InvalidField("prompt", "is required (or input_ref, for an input uploaded with CreateUpload)")
    params = check_params(request.params)
    key = request.idempotency_key
    if key and not IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidField("idempotency_key", "must be 1 to 128 printable ASCII characters without spaces")
    return ValidSubmit(pipeline, prompt, input_ref, params, key, check_metadata(dict(request.metadata)))


def check_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """At most MAX_METADATA pairs; keys 1 to 64 characters, values at most 512."""
    if len(metadata) > MAX_METADATA:
        raise InvalidField("metadata", f"at most {MAX_METADATA} pairs")
    for key, value in metadata.items():
        if not 1 <= len(key) <= MAX_METADATA_KEY or len(value) > MAX_METADATA_VALUE:
            raise InvalidField(
                "metadata", f"keys must be 1 to {MAX_METADATA_KEY} characters, values at most {MAX_METADATA_VALUE}"
            )
    return metadata


def check_pipeline(pipeline: str, pipelines: Pipelines, settings: Settings) -> str:
    """A pipeline this deployment runs: declared, not a drill unless drills are on, its models served."""
    if pipeline not in pipelines.names():
        raise InvalidField("pipeline", f"unknown pipeline {pipeline[:64]!r}; known: {', '.join(pipelines.names())}")
    if pipelines.is_drill(pipeline) and not settings.drills:
        raise InvalidField("pipeline", f"{pipeline} is a fault drill, which this deployment does not offer")
    served = settings.served_models
    missing = sorted(pipelines.models(pipeline) - served) if served else []
    if missing:
        raise InvalidField(
            "pipeline",
            f"{pipeline} needs the model {', '.join(missing)}, which this deployment does not serve "
            f"(it serves {', '.join(sorted(served))})",
        )
    return pipeline


def check_prompt(prompt: str, pipeline: str, pipelines: Pipelines, settings: Settings) -> str:
    size = len(prompt.encode("utf-8"))
    if size > settings.max_input_bytes:
        raise TooLarge("prompt", f"is {size} bytes; the maximum is {settings.max_input_bytes}")
    check_model_input("prompt", size, pipeline, pipelines)
    if not prompt.strip():
        raise InvalidField("prompt", "must not be empty")
    if problem := untrusted_text.refusal(prompt):
        raise InvalidField("prompt", problem)
    return prompt


def check_model_input(field: str, size: int, pipeline: str, pipelines: Pipelines) -> None:
    """An input no longer than every model of the pipeline takes."""
    limit = pipelines.input_limit(pipeline)
    if limit is not None and size > limit[0]:
        raise InvalidField(
            field, f"is {size} bytes; the model {limit[1]} (pipeline {pipeline}) takes at most {limit[0]}"
        )


def check_page_size(page_size: int) -> int:
    if page_size < 0 or page_size > MAX_PAGE_SIZE:
        raise InvalidField("page_size", f"must be between 0 and {MAX_PAGE_SIZE} (0 means 20)")
    return page_size or 20
