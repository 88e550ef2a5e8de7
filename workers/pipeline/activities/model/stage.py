"""The model stage as a Temporal activity: stream a model's tokens from Triton straight into the job's event log.

A retried attempt goes on where its predecessor's published tokens end (resume.py); tokens published twice carry
the same cursor, so readers drop the copy: every index reaches a client once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka.errors import KafkaError
from opentelemetry.trace import SpanKind
from temporalio import activity
from temporalio.exceptions import ApplicationError

from jobstream import tracing
from jobstream.event_log import LogLocator, delivered_tokens
from jobstream.payload_store import PayloadStore
from jobstream.settings import Settings
from jobstream.workflow_io import StageInput, StageOutput, StageProgress
from workers.pipeline.activities.heartbeat import heartbeat_ticker
from workers.pipeline.activities.model.metrics import ModelMetrics
from workers.pipeline.activities.model.outage import kafka_reachable, wait_until_back
from workers.pipeline.activities.model.resume import ResumePlan, resumed_progress
from workers.pipeline.activities.model.token_sink import TokenLog, TokenSink
from workers.pipeline.activities.model.triton_vllm import TRITON_UNAVAILABLE, GenerationRequest, Piece, triton_models
from workers.pipeline.activities.text import INVALID_INPUT, load_text

# Cancellation reaches an attempt in a heartbeat's response (workers/worker_process.HEARTBEAT_THROTTLE): beat
# this often. Before the first token's place is known the ticker waits a second, so that the heartbeat the SDK
# sends at once is, in the usual case, the one naming it.
TICK_S = 0.3
FIRST_BEAT_S = 1.0


class Models(Protocol):
    """What the stage needs of the models' server (triton_vllm.TritonModels)."""

    def generate(self, request: GenerationRequest) -> AsyncIterator[Piece]: ...

    async def ready(self, model: str) -> bool: ...

    async def close(self) -> None: ...


ReadBack = Callable[[StageInput, LogLocator], Awaitable[list[str]]]


@dataclass
class Attempt:
    """What this attempt has so far: the stage's tokens (the delivered prefix first) and their usage."""

    tokens: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    finish_reason: str = ""

    def progress(self, first: LogLocator | None) -> StageProgress:
        return StageProgress(
            tokens=len(self.tokens),
            first_offset=first.offset if first else -1,
            partition=first.partition if first else -1,
            prompt_tokens=self.prompt_tokens,
        )

    def output(self, attempt: int, **where: str | None) -> StageOutput:
        return StageOutput(
            tokens=len(self.tokens),
            attempt=attempt,
            prompt_tokens=self.prompt_tokens,
            finish_reason=self.finish_reason or "length",
            **where,
        )


class ModelActivities:
    def __init__(
        self,
        settings: Settings,
        event_log: TokenLog,
        store: PayloadStore,
        models: Models | None = None,
        read_back: ReadBack | None = None,
        kafka_check: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.settings = settings
        self.event_log = event_log
        self.store = store
        self._models = models
        self.read_back = read_back or self._delivered
        self.kafka_check = kafka_check or (lambda: kafka_reachable(settings))

    @property
    def models(self) -> Models:
        """One Triton client (one gRPC channel) for every attempt this worker runs, made on first use."""
        if self._models is None:
            self._models = triton_models(self.settings)
        return self._models

    async def close(self) -> None:
        if self._models is not None:
            await self._models.close()
            self._models = None

    async def _delivered(self, stage: StageInput, first: LogLocator) -> list[str]:
        return await delivered_tokens(self.settings, stage.job_id, stage.stage_index, first)

    @activity.defn(name="run_model")
    async def run_model(self, stage: StageInput) -> StageOutput:
        if stage.stage.model is None:
            raise ApplicationError("run_model needs a model stage", type=INVALID_INPUT, non_retryable=True)
        text = await load_text(self.store, stage)
        info = activity.info()
        progress = resumed_progress(info.heartbeat_details)
        attempt = Attempt(prompt_tokens=progress.prompt_tokens)
        try:
            await self._attempt(stage, text, progress, attempt)
        except asyncio.CancelledError:
            cancel = activity.cancellation_details()
            if cancel is None or not cancel.cancel_requested:
                raise
            # The job was cancelled: report what was delivered, so the job's usage counts it.
            attempt.finish_reason = "cancelled"
            activity.logger.info("model %s cancelled after %d tokens", stage.stage.model, len(attempt.tokens))
            return attempt.output(info.attempt, text="".join(attempt.tokens))
        output = "".join(attempt.tokens)
        data = output.encode("utf-8")
        if len(data) > self.settings.payload_threshold_bytes:
            return attempt.output(info.attempt, ref=await self.store.put("stages", data))
        return attempt.output(info.attempt, text=output)

    async def _attempt(self, stage: StageInput, text: str, progress: StageProgress, attempt: Attempt) -> None:
        model = stage.stage.model or ""
        info = activity.info()
        metrics = ModelMetrics(model, retry=info.attempt > 1, enabled=self.settings.metrics)
        known = progress.first_offset >= 0 and progress.partition >= 0
        first = LogLocator(progress.partition, progress.first_offset) if known else None
        # The first token's place is heartbeated at once: it is where a successor reads back from.
        sink = TokenSink(self.event_log, stage, metrics, first, lambda at: activity.heartbeat(attempt.progress(at)))
        started = time.monotonic()

        def beat() -> tuple[StageProgress] | None:
            # Every heartbeat repeats the progress: one without it would make a successor start over.
            ready = sink.first is not None or time.monotonic() - started >= FIRST_BEAT_S
            return (attempt.progress(sink.first),) if ready else None

        async with heartbeat_ticker(beat, TICK_S), metrics.attempt():
            try:
                attempt.tokens = await self.read_back(stage, first) if first else []
                plan = ResumePlan.of(text, attempt.tokens, stage.stage.resume, stage.params.max_tokens)
                activity.logger.info(
                    "model %s attempt %d resumes at token %d (%s)",
                    model,
                    info.attempt,
                    len(plan.delivered),
                    stage.stage.resume,
                )
                await self._generate(stage, plan, attempt, sink, metrics)
            except (ApplicationError, KafkaError) as exc:
                sink.abandon()
                await self._wait_out(exc, model, attempt.progress(sink.first))
                raise
            except asyncio.CancelledError:
                await sink.flush()
                raise

    async def _generate(
        self, stage: StageInput, plan: ResumePlan, attempt: Attempt, sink: TokenSink, metrics: ModelMetrics
    ) -> None:
        if plan.budget <= 0:
            return  # the predecessor delivered every token and died before it could say so
        model = stage.stage.model or ""
        request = GenerationRequest(
            model=model,
            request_id=f"{stage.job_id}/{stage.stage.name}/{uuid.uuid4().hex[:8]}",
            text=plan.text,
            params=stage.params,
            max_tokens=plan.budget,
            parameters={**stage.stage.parameters, "attempt": activity.info().attempt},
        )
        earlier_prompts, verified = attempt.prompt_tokens, 0
        # One span for the Triton call. The first token's publish has its own, which its record names as its
        # parent (traceparent); every other token's record names the call's.
        with tracing.tracer().start_as_current_span(
            "triton.stream_infer", kind=SpanKind.CLIENT, attributes={"jobstream.model": model}
        ):
            headers = tracing.record_headers()
            async for piece in self.models.generate(request):
                if piece.num_input_tokens is not None:
                    attempt.prompt_tokens = earlier_prompts + piece.num_input_tokens
                attempt.finish_reason = piece.finish_reason or attempt.finish_reason
                if not piece.text:
                    continue
                metrics.token_arrived()
                if verified < plan.regenerate:
                    plan.verify(model, verified, piece.text)
                    verified += 1
                    continue
                await sink.put(len(attempt.tokens), piece.text, headers)
                attempt.tokens.append(piece.text)
                metrics.token_delivered()
        await sink.drain()

    async def _wait_out(self, error: BaseException, model: str, details: StageProgress) -> None:
        if isinstance(error, KafkaError):
            await wait_until_back("Kafka", self.kafka_check, details)
        elif isinstance(error, ApplicationError) and error.type == TRITON_UNAVAILABLE:
            await wait_until_back("Triton", lambda: self.models.ready(model), details)
