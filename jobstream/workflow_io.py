"""What crosses Temporal between the JobService, the pipeline workflow and its activities (pydantic, small
by design): the workflow's input and result, each stage's input and output, the model stage's progress
(its heartbeat details), and the events the workflow asks to have published."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobstream.event_log import LogLocator
from jobstream.pipelines import ResolvedStage

# New jobs start V2 (fewer durable trips). A new type rather than a `workflow.patched` branch: a patch makes the
# SDK upsert the TemporalChangeVersion search attribute in every job, one more durable write each.
WORKFLOW_TYPE = "PipelineWorkflowV2"
# Jobs started before V2 run on to their end on the frozen code that started them.
LEGACY_WORKFLOW_TYPE = "PipelineWorkflow"
# A visibility query's term for every job, whichever type started it.
JOB_WORKFLOWS = f"WorkflowType IN ('{WORKFLOW_TYPE}', '{LEGACY_WORKFLOW_TYPE}')"
# The signal that tells a job why it is about to be cancelled (CancelJob sends it just before the cancel).
CANCEL_REASON_SIGNAL = "cancel_reason"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class GenerationParams(_Model):
    """Maps onto vLLM's sampling parameters, which is what the model stage sends (`sampling_parameters`)."""

    max_tokens: int = 64
    temperature: float = 0.8
    seed: int = 0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()


class Usage(_Model):
    """Tokens as a user is billed: every attempt's prompt, and each output token delivered once."""

    prompt_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


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
    # A model stage's prompt tokens over all its attempts, and why it stopped: "length", "stop", or
    # "cancelled" (the job was cancelled while it generated: the output is what was delivered).
    prompt_tokens: int = 0
    finish_reason: str = ""


class JobResult(_Model):
    text: str | None = None
    ref: str | None = None
    tokens: int = 0
    usage: Usage = Usage()
    finish_reason: str = ""


class StageProgress(_Model):
    """A model stage's heartbeat details: what a retried attempt needs to resume after its predecessor."""

    tokens: int = 0
    # Where the stage's first token is in the log (-1 until it was acknowledged).
    first_offset: int = -1
    partition: int = -1
    # The prompt tokens of the attempts so far (each attempt reads its prompt again).
    prompt_tokens: int = 0


class _EventSpec(_Model):
    """An event the workflow asks an activity to publish; the activity stamps the time unless it is given. One
    class per event type, told apart by `type` (an old worker's all-fields spec still reads as one of them)."""

    job_id: str
    cursor: str
    time: datetime | None = None


class JobStartedSpec(_EventSpec):
    type: Literal["job.started"] = "job.started"
    pipeline: str
    stages: list[str]


class _StageSpec(_EventSpec):
    stage: str
    stage_index: int
    stage_count: int
    attempt: int = 0


class StageStartedSpec(_StageSpec):
    type: Literal["stage.started"] = "stage.started"


class StageCompletedSpec(_StageSpec):
    type: Literal["stage.completed"] = "stage.completed"


class JobCompletedSpec(_EventSpec):
    type: Literal["job.completed"] = "job.completed"
    result_text: str | None = None
    result_ref: str | None = None
    tokens: int = 0
    usage: Usage = Usage()
    finish_reason: str = ""


class JobFailedSpec(_EventSpec):
    type: Literal["job.failed"] = "job.failed"
    stage: str = ""
    error_code: str = ""
    error_message: str = ""
    usage: Usage = Usage()


class JobCancelledSpec(_EventSpec):
    type: Literal["job.cancelled"] = "job.cancelled"
    reason: str = ""
    stage: str = ""
    tokens: int = 0
    usage: Usage = Usage()
    finish_reason: str = ""


# Tokens are not here: the model stage publishes them itself, never through the workflow.
EventSpec = Annotated[
    JobStartedSpec | StageStartedSpec | StageCompletedSpec | JobCompletedSpec | JobFailedSpec | JobCancelledSpec,
    Field(discriminator="type"),
]


class LocalStage(_Model):
    """A CPU stage the workflow runs as a local activity, with the events around it: one trip instead of three.

    `publish_before` goes out before the stage runs (job.started and the stage's own stage.started, say);
    `publish_after` once it has succeeded, its stage.completed stamped with the attempt that succeeded, and a
    job.completed among them (the last stage's: the job's end rides with it) given the stage's output as result.
    """

    stage: StageInput
    publish_before: list[EventSpec] = []
    publish_after: list[EventSpec] = []


class LocalStageResult(_Model):
    output: StageOutput
    # Where each of `publish_before` landed, in order: the workflow records job.started's in the memo.
    published_before: list[LogLocator] = []
