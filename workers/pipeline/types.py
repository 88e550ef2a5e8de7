"""What crosses Temporal between the pipeline workflow and its activities (pydantic, small by design)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from workers.pipelines import ResolvedStage


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class GenerationParams(_Model):
    max_tokens: int = 64
    temperature: float = 0.8
    seed: int = 0


class JobInput(_Model):
    job_id: str
    tenant: str
    pipeline: str
    # Resolved when the job is submitted, so a later edit of the pipeline file never changes a running job.
    stages: list[ResolvedStage]
    prompt: str | None = None
    input_ref: str | None = None
    params: GenerationParams = GenerationParams()


class StageInput(_Model):
    job_id: str
    stage: ResolvedStage
    stage_index: int
    stage_count: int
    # Exactly one of text / ref: a large input stays in MinIO and only its reference travels.
    text: str | None = None
    ref: str | None = None
    params: GenerationParams = GenerationParams()


class StageOutput(_Model):
    text: str | None = None
    ref: str | None = None
    tokens: int = 0
    # The attempt that produced this output (1 unless the stage was retried).
    attempt: int = 1


class JobResult(_Model):
    text: str | None = None
    ref: str | None = None
    tokens: int = 0


class EventSpec(_Model):
    """An event the workflow asks an activity to publish; the activity stamps the time."""

    job_id: str
    type: str
    cursor: str
    pipeline: str = ""
    stages: list[str] = []
    stage: str = ""
    stage_index: int = 0
    stage_count: int = 0
    attempt: int = 0
    result_text: str | None = None
    result_ref: str | None = None
    tokens: int = 0
    error_code: str = ""
    error_message: str = ""
    reason: str = ""
