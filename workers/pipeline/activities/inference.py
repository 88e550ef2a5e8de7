"""The model stage: stream tokens from Triton straight into the job's event log, never through Temporal.

It speaks the request contract of Triton's vLLM backend (`text_input`, `stream`, `sampling_parameters`,
`exclude_input_in_output` -> `text_output`, `finish_reason`, `num_input_tokens`), so a stage can point at
a real vLLM model in Triton or at the local models, which speak the same contract.

A retried attempt goes on where its predecessor's published tokens end: it reads them back from Kafka
(starting at the offset its predecessor heartbeated) and, as the stage declares, asks the model to
continue the input followed by them (`continue`), or to start over while it skips as many (`restart`).
Tokens published twice carry the same cursor, so readers drop the copy: every index reaches a client once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc.aio as triton
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError
from tritonclient.utils import InferenceServerException

from jobstream import cursors, tracing
from jobstream.connections import kafka_options
from jobstream.event_log import EventLog, LogLocator, readable_event
from jobstream.payload_store import PayloadStore
from jobstream.settings import Settings
from jobstream.v1.event_pb2 import JobEvent, TokenEvent
from jobstream.workflow_io import GenerationParams, StageInput, StageOutput, StageProgress
from workers.pipeline.activities.text import INVALID_INPUT, load_text

GPU_OUT_OF_MEMORY = "GpuOutOfMemory"
# A model declared `resume: restart` regenerated something other than what it had delivered.
NOT_REPRODUCIBLE = "ModelNotReproducible"
OPTIONAL_OUTPUTS = ("return_finish_reason", "return_num_input_tokens", "return_num_output_tokens")
OUTPUTS = ("text_output", "finish_reason", "num_input_tokens", "num_output_tokens")
# How long a cancelled attempt waits for Kafka to acknowledge the tokens it already sent.
CANCEL_FLUSH_S = 2.0
TRITON_UNAVAILABLE = "TritonUnavailable"
# How long an attempt that lost Triton or Kafka waits for it to come back before it fails (and is retried).
DEPENDENCY_WAIT_S = 60.0


def _tensor(name: str, value: Any, dtype: Any, triton_type: str) -> triton.InferInput:
    data = np.array([value], dtype=dtype)
    tensor = triton.InferInput(name, [1], triton_type)
    tensor.set_data_from_numpy(data)
    return tensor


def sampling_parameters(params: GenerationParams, max_tokens: int) -> dict[str, Any]:
    """The job's parameters as vLLM's SamplingParams fields."""
    sampling: dict[str, Any] = {
        "max_tokens": max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "seed": params.seed,
    }
    if params.stop:
        sampling["stop"] = list(params.stop)
    return sampling


def model_inputs(text: str, params: GenerationParams, max_tokens: int) -> list[triton.InferInput]:
    """A streaming request in the vLLM backend's contract: the text to continue and vLLM's sampling
    parameters, the output without the input, and the optional outputs usage is counted from."""
    sampling = sampling_parameters(params, max_tokens)
    return [
        _tensor("text_input", text.encode("utf-8"), np.object_, "BYTES"),
        _tensor("stream", True, np.bool_, "BOOL"),
        _tensor("sampling_parameters", json.dumps(sampling).encode("utf-8"), np.object_, "BYTES"),
        _tensor("exclude_input_in_output", True, np.bool_, "BOOL"),
        *(_tensor(name, True, np.bool_, "BOOL") for name in OPTIONAL_OUTPUTS),
    ]


@dataclass(frozen=True)
class Piece:
    """One streamed response: its new text (one token; "" for a bare final response) and what it says."""

    text: str
    finish_reason: str  # "" until the model says why it stopped
    num_input_tokens: int | None


@dataclass
class Attempt:
    """What this attempt has so far: the stage's tokens (the delivered prefix first), their usage, and where
    the stage's first token is in the log (what a successor reads back from)."""

    tokens: list[str]
    prompt_tokens: int
    finish_reason: str = ""
    first_offset: int = -1
    partition: int = -1
    first_token_at: float | None = None  # time.monotonic() of this attempt's first token
    resumed_at: int = 0  # how many of `tokens` a predecessor had delivered

    def progress(self) -> StageProgress:
        return StageProgress(
            tokens=len(self.tokens),
            first_offset=self.first_offset,
            partition=self.partition,
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


def classify(message: str) -> ApplicationError:
    """Map a model or server error onto the retry policy's vocabulary."""
    if "INVALID_ARGUMENT" in message:
        return ApplicationError(message, type=INVALID_INPUT, non_retryable=True)
    if "out of memory" in message.lower():
        return ApplicationError(message, type=GPU_OUT_OF_MEMORY)
    return ApplicationError(message, type=TRITON_UNAVAILABLE)


class InferenceActivities:
    def __init__(self, settings: Settings, log: EventLog, store: PayloadStore) -> None:
        self.settings = settings
        self.log = log
        self.store = store
        self._client: triton.InferenceServerClient | None = None

    @property
    def client(self) -> triton.InferenceServerClient:
        """One Triton client (one gRPC channel) for every attempt this worker runs; it reconnects by itself."""
        if self._client is None:
            ca = self.settings.triton_ca_file
            self._client = triton.InferenceServerClient(
                self.settings.triton_grpc_url,
                ssl=self.settings.triton_ssl,
                root_certificates=str(ca) if ca else None,
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    @activity.defn(name="run_model")
    async def run_model(self, stage: StageInput) -> StageOutput:
        model = stage.stage.model
        if model is None:
            raise ApplicationError("run_model needs a model stage", type=INVALID_INPUT, non_retryable=True)
        text = await load_text(self.store, stage)
        info = activity.info()
        progress = resumed_progress(info.heartbeat_details)
        parameters: dict[str, Any] = {**stage.stage.parameters, "attempt": info.attempt}
        metrics = ModelMetrics(model, retry=info.attempt > 1, enabled=self.settings.metrics)
        state = Attempt(
            tokens=[],
            prompt_tokens=progress.prompt_tokens,
            first_offset=progress.first_offset,
            partition=progress.partition,
        )
        try:
            async with heartbeat_ticker(state), metrics.attempt(state):
                await self.generate(self.client, model, text, stage, progress, parameters, state, metrics)
        except asyncio.CancelledError:
            cancel = activity.cancellation_details()
            if cancel is None or not cancel.cancel_requested:
                raise
            # The job was cancelled: report what was delivered, so the job's usage counts it.
            state.finish_reason = "cancelled"
            activity.logger.info("model %s cancelled after %d tokens", model, len(state.tokens))
            return state.output(info.attempt, text="".join(state.tokens))
        output = "".join(state.tokens)
        data = output.encode("utf-8")
        if len(data) > self.settings.payload_threshold_bytes:
            return state.output(info.attempt, ref=await self.store.put("stages", data))
        return state.output(info.attempt, text=output)

    async def generate(
        self,
        client: triton.InferenceServerClient,
        model: str,
        text: str,
        stage: StageInput,
        progress: StageProgress,
        parameters: dict[str, Any],
        state: Attempt,
        metrics: ModelMetrics,
    ) -> None:
        # The ticker (heartbeat_ticker) beats `state.progress()` while this runs: every heartbeat repeats the
        # progress, since one without it would make a successor start over.
        pending: list[asyncio.Future[Any]] = []
        try:
            state.tokens = await self.published_tokens(stage, progress)
            delivered = state.resumed_at = len(state.tokens)
            if stage.stage.resume == "continue":
                text_input, budget, skip = text + "".join(state.tokens), stage.params.max_tokens - delivered, 0
            else:
                text_input, budget, skip = text, stage.params.max_tokens, delivered
            activity.logger.info(
                "model %s attempt %d resumes at token %d (%s)",
                model,
                activity.info().attempt,
                delivered,
                stage.stage.resume,
            )
            if budget <= 0:
                return  # the predecessor delivered every token and died before it could say so
            earlier_prompts = progress.prompt_tokens
            # One span for the Triton call. The first token's publish has its own, which its record names as
            # its parent (traceparent); every other token's record names the call's.
            with tracing.tracer().start_as_current_span(
                "triton.stream_infer", kind=SpanKind.CLIENT, attributes={"jobstream.model": model}
            ):
                headers = tracing.record_headers()
                async for piece in self.stream(client, model, text_input, stage, budget, parameters):
                    if piece.num_input_tokens is not None:
                        # Heartbeated with the next token: the first heartbeat must be the one with the first
                        # offset (the SDK sends the first at once, later ones throttled).
                        state.prompt_tokens = earlier_prompts + piece.num_input_tokens
                    state.finish_reason = piece.finish_reason or state.finish_reason
                    if not piece.text:
                        continue
                    metrics.token_arrived()
                    if skip:
                        regenerated = state.tokens[len(state.tokens) - skip]
                        if piece.text != regenerated:
                            raise ApplicationError(
                                f"model {model} declares resume: restart but regenerated {piece.text!r} where it "
                                f"had delivered {regenerated!r}",
                                type=NOT_REPRODUCIBLE,
                                non_retryable=True,
                            )
                        skip -= 1
                        continue
                    event = token_event(stage, len(state.tokens), piece.text)
                    if state.first_token_at is None:
                        state.first_token_at = time.monotonic()
                    if state.first_offset < 0:
                        # Wait for the first token's offset: it is where a successor starts reading, so it is
                        # heartbeated at once rather than at the ticker's next beat.
                        with tracing.tracer().start_as_current_span("kafka.produce", kind=SpanKind.PRODUCER):
                            published = await metrics.produced(self.log.publish(event))
                        state.tokens.append(piece.text)
                        state.first_offset, state.partition = published.offset, published.partition
                        activity.heartbeat(state.progress())
                    else:
                        # A send Kafka refused fails the attempt now: its retry resumes after the acked prefix.
                        pending = unacknowledged(pending)
                        pending.append(metrics.acknowledged(await self.log.send(event, headers)))
                        state.tokens.append(piece.text)
            # Every token is acknowledged by Kafka before the stage may complete.
            await asyncio.gather(*pending)
        except (ApplicationError, KafkaError) as exc:
            for send in pending:
                send.add_done_callback(_retrieve)
            await self.outage_over(exc, model, state.progress())
            raise
        except asyncio.CancelledError:
            # Cancelled: what Kafka acknowledges within a moment is what the clients got.
            if pending:
                await asyncio.wait(pending, timeout=CANCEL_FLUSH_S)
            for send in pending:
                send.add_done_callback(_retrieve)
            raise

    async def stream(
        self,
        client: triton.InferenceServerClient,
        model: str,
        text: str,
        stage: StageInput,
        max_tokens: int,
        parameters: dict[str, Any],
    ) -> AsyncIterator[Piece]:
        """The model's responses; raises ApplicationError classified for the retry policy."""
        request = {
            "model_name": model,
            "inputs": model_inputs(text, stage.params, max_tokens),
            "outputs": [triton.InferRequestedOutput(name) for name in OUTPUTS],
            "request_id": f"{stage.job_id}/{stage.stage.name}/{uuid.uuid4().hex[:8]}",
            "parameters": parameters,
        }

        async def requests() -> AsyncIterator[dict[str, Any]]:
            # One request, then half-close: the aio client cannot ask for Triton's empty final response,
            # so the stream's clean end (gRPC OK after the last response) is what marks completion.
            yield request

        responses = client.stream_infer(inputs_iterator=requests())
        try:
            async for result, error in responses:
                if error is not None:
                    raise classify(str(error))
                if result is None:
                    continue
                yield _piece(result)
                final = result.get_response().parameters.get("triton_final_response")
                if final is not None and final.bool_param:
                    return
        except InferenceServerException as exc:
            raise classify(str(exc)) from exc
        except grpc.RpcError as exc:
            raise ApplicationError(f"Triton unavailable: {exc}", type=TRITON_UNAVAILABLE) from exc
        finally:
            # Cancelling the call cancels the request in Triton: a cancelled job stops generating.
            with contextlib.suppress(Exception):
                responses.cancel()

    async def outage_over(self, error: BaseException, model: str, details: StageProgress) -> None:
        """After losing Triton or Kafka, wait (heartbeating) until it is back before failing the attempt.

        A restarting server refuses connections for many seconds; without this wait the retries (1 s, 2 s,
        4 s apart) would all fail at once against it and exhaust the stage's attempts in one outage.
        """
        check: Callable[[], Awaitable[bool]]
        if isinstance(error, KafkaError):
            name, check = "Kafka", self.kafka_reachable
        elif isinstance(error, ApplicationError) and error.type == TRITON_UNAVAILABLE:
            name, check = "Triton", functools.partial(self.model_ready, model)
        else:
            return
        deadline = time.monotonic() + DEPENDENCY_WAIT_S
        while time.monotonic() < deadline:
            activity.heartbeat(details)
            if await within(check(), timeout_s=2.0):
                return
            activity.heartbeat(details)
            await asyncio.sleep(0.5)
        activity.logger.warning("%s still unreachable after %.0f s", name, DEPENDENCY_WAIT_S)

    async def kafka_reachable(self) -> bool:
        client = AIOKafkaClient(**kafka_options(self.settings), request_timeout_ms=2000)
        try:
            await client.bootstrap()  # a metadata request: the broker is up and knows its topics
            return bool(client.cluster.partitions_for_topic(self.log.topic))
        except KafkaError:
            return False
        finally:
            await client.close()

    async def model_ready(self, model: str) -> bool:
        try:
            return bool(await self.client.is_model_ready(model))
        except Exception:
            return False

    async def published_tokens(self, stage: StageInput, progress: StageProgress) -> list[str]:
        """The tokens a previous attempt already published for this stage, read back from Kafka."""
        first_offset, partition = progress.first_offset, progress.partition
        if first_offset < 0 or partition < 0:
            return []
        consumer = AIOKafkaConsumer(**kafka_options(self.settings), enable_auto_commit=False, fetch_max_wait_ms=50)
        await consumer.start()
        try:
            tp = TopicPartition(self.log.topic, partition)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            consumer.seek(tp, first_offset)
            found: dict[int, str] = {}
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=500)
                for record in batch.get(tp, []):
                    if record.key != stage.job_id.encode() or record.value is None:
                        continue
                    event = readable_event(record.value)
                    if event is not None and event.type == "token" and cursors.is_token_of(event.id, stage.stage_index):
                        found.setdefault(event.token.index, event.token.text)
        finally:
            await consumer.stop()
        # Only a gap-free prefix counts; the model regenerates anything after a gap.
        prefix: list[str] = []
        while len(prefix) in found:
            prefix.append(found[len(prefix)])
        return prefix


def _piece(result: Any) -> Piece:
    def first(name: str) -> Any:
        values = result.as_numpy(name)
        return None if values is None or values.size == 0 else values.reshape(-1)[0]

    raw = first("text_output")
    text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw or "")
    reason = first("finish_reason")
    reason = reason.decode("utf-8") if isinstance(reason, bytes) else str(reason or "")
    inputs = first("num_input_tokens")
    # vLLM says "None" (str of Python's None) until the sequence has finished.
    return Piece(text, "" if reason == "None" else reason, None if inputs is None else int(inputs))


def resumed_progress(heartbeat_details: Sequence[Any]) -> StageProgress:
    """The progress the previous attempt heartbeated; none on a first attempt (or unreadable details)."""
    try:
        return StageProgress.model_validate(heartbeat_details[0]) if heartbeat_details else StageProgress()
    except ValidationError:
        return StageProgress()


class ModelMetrics:
    """What a model attempt tells Prometheus (through the Temporal runtime's meter, served by the worker at
    /metrics): attempts (first or retry) and how they ended, tokens generated, time to the first token, the
    time between tokens and Kafka's produce latency.

    The per-token observations are kept in lists and recorded when the attempt ends, so the token path pays
    an append, not a call into the runtime's meter. With metrics off nothing is kept."""

    def __init__(self, model: str, retry: bool, enabled: bool = True) -> None:
        self.meter = activity.metric_meter().with_additional_attributes({"model": model})
        self.retry = retry
        self.enabled = enabled
        self.gaps: list[float] = []
        self.produce_latencies: list[float] = []
        self._last_token: float | None = None

    def token_arrived(self) -> None:
        if self.enabled:
            now = time.monotonic()
            if self._last_token is not None:
                self.gaps.append(now - self._last_token)
            self._last_token = now

    async def produced(self, publish: Awaitable[LogLocator]) -> LogLocator:
        """`publish`'s result, its time from send to acknowledgement kept."""
        started = time.monotonic()
        located = await publish
        if self.enabled:
            self.produce_latencies.append(time.monotonic() - started)
        return located

    def acknowledged(self, send: asyncio.Future[Any]) -> asyncio.Future[Any]:
        """`send`, its time to acknowledgement kept when Kafka acknowledges it."""
        if self.enabled:
            started = time.monotonic()
            latencies = self.produce_latencies
            send.add_done_callback(lambda _: latencies.append(time.monotonic() - started))
        return send

    @contextlib.asynccontextmanager
    async def attempt(self, state: Attempt) -> AsyncIterator[None]:
        started = time.monotonic()
        outcome, error_type = "succeeded", ""
        try:
            yield
        except ApplicationError as exc:
            outcome, error_type = "failed", exc.type or "ApplicationError"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as exc:
            outcome, error_type = "failed", type(exc).__name__
            raise
        finally:
            if self.enabled:
                self.record(state, started, outcome, error_type)

    def record(self, state: Attempt, started: float, outcome: str, error_type: str) -> None:
        attributes = {"retry": str(self.retry).lower(), "outcome": outcome, "error_type": error_type}
        self.meter.create_counter(
            "jobstream_model_attempts", "Model stage attempts, by how they ended (retry: not the first)."
        ).add(1, attributes)
        self.meter.create_counter("jobstream_tokens_generated", "Tokens a model stage delivered.").add(
            max(0, len(state.tokens) - state.resumed_at)
        )
        if state.first_token_at is not None:
            self.meter.create_histogram_timedelta(
                "jobstream_time_to_first_token", "From an attempt's start to its first new token.", "duration"
            ).record(timedelta(seconds=state.first_token_at - started))
        gaps = self.meter.create_histogram_timedelta(
            "jobstream_inter_token", "Between two tokens of one attempt, as Triton streamed them.", "duration"
        )
        for gap in self.gaps:
            gaps.record(timedelta(seconds=gap))
        produce = self.meter.create_histogram_timedelta(
            "jobstream_kafka_produce",
            "From a token's send to the events topic to Kafka's acknowledgement (acks=all).",
            "duration",
        )
        for latency in self.produce_latencies:
            produce.record(timedelta(seconds=latency))


# Cancellation reaches an attempt in a heartbeat's response (workers/worker_process.HEARTBEAT_THROTTLE): beat
# this often. Before the first token's offset is known the ticker waits a second, so that the heartbeat the
# SDK sends at once is, in the usual case, the one naming that offset.
TICK_S = 0.3
FIRST_BEAT_S = 1.0


@contextlib.asynccontextmanager
async def heartbeat_ticker(state: Attempt) -> AsyncIterator[None]:
    """Heartbeat the attempt's progress from one task, on a clock, not per token: the SDK encodes every
    heartbeat call although it sends at most one per throttle interval."""

    async def beat() -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(TICK_S)
            if state.first_offset >= 0 or time.monotonic() - started >= FIRST_BEAT_S:
                activity.heartbeat(state.progress())

    ticker = asyncio.create_task(beat())
    try:
        yield
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker


async def within(check: Awaitable[bool], timeout_s: float) -> bool:
    """The check's answer, or False if it has none within `timeout_s`. A check that hangs (a stopped server)
    is cancelled but not waited for: its clean-up must not hold up the caller's heartbeats."""
    task = asyncio.ensure_future(check)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if task not in done:
        task.cancel()
        task.add_done_callback(lambda finished: finished.cancelled() or finished.exception())
        return False
    return task.exception() is None and bool(task.result())


def unacknowledged(sends: list[asyncio.Future[Any]]) -> list[asyncio.Future[Any]]:
    """The sends Kafka has not acknowledged yet; raises the error of one that failed."""
    waiting = []
    for send in sends:
        if not send.done():
            waiting.append(send)
        elif (error := send.exception()) is not None:
            raise error
    return waiting


def _retrieve(send: asyncio.Future[Any]) -> None:
    # The attempt already failed; its other sends' outcomes no longer matter (and must not be logged as lost).
    if not send.cancelled():
        send.exception()


def token_event(stage: StageInput, index: int, text: str) -> JobEvent:
    # From time_ns: Timestamp.GetCurrentTime goes through a datetime, a few µs of every token.
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    now = Timestamp(seconds=seconds, nanos=nanos)
    return JobEvent(
        id=cursors.token(stage.stage_index, index),
        job_id=stage.job_id,
        type="token",
        time=now,
        token=TokenEvent(index=index, text=text, stage=stage.stage.name),
    )
