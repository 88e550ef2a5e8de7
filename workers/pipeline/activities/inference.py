"""The model stage: stream tokens from Triton straight into the job's event log, never through Temporal.

A retried attempt resumes where its predecessor's published tokens end: it reads them back from Kafka
(starting at the offset its predecessor heartbeated) and asks the model to start at the next index. Tokens
published twice carry the same cursor, so readers drop the copy: every index reaches a client once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
import numpy as np
import tritonclient.grpc.aio as triton
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError
from tritonclient.utils import InferenceServerException

from jobstream import cursors
from jobstream.event_log import EventLog, parse_event
from jobstream.payload_store import PayloadStore
from jobstream.settings import Settings
from jobstream.v1.event_pb2 import JobEvent, TokenEvent
from jobstream.workflow_io import StageInput, StageOutput, StageProgress
from workers.pipeline.activities.text import INVALID_INPUT, load_text

GPU_OUT_OF_MEMORY = "GpuOutOfMemory"
TRITON_UNAVAILABLE = "TritonUnavailable"
# How long an attempt that lost Triton or Kafka waits for it to come back before it fails (and is retried).
DEPENDENCY_WAIT_S = 60.0
T = TypeVar("T")


def _tensor(name: str, value: Any, dtype: Any, triton_type: str) -> triton.InferInput:
    data = np.array([value], dtype=dtype)
    tensor = triton.InferInput(name, [1], triton_type)
    tensor.set_data_from_numpy(data)
    return tensor


def model_inputs(model: str, text: str, stage: StageInput, start_index: int) -> list[triton.InferInput]:
    encoded = text.encode("utf-8")
    if model == "keywords":
        return [_tensor("TEXT", encoded, np.object_, "BYTES")]
    params = stage.params
    return [
        _tensor("PROMPT", encoded, np.object_, "BYTES"),
        _tensor("MAX_TOKENS", params.max_tokens, np.int32, "INT32"),
        _tensor("TEMPERATURE", params.temperature, np.float32, "FP32"),
        _tensor("SEED", params.seed, np.int64, "INT64"),
        _tensor("START_INDEX", start_index, np.int32, "INT32"),
    ]


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

    @activity.defn(name="run_model")
    async def run_model(self, stage: StageInput) -> StageOutput:
        model = stage.stage.model
        if model is None:
            raise ApplicationError("run_model needs a model stage", type=INVALID_INPUT, non_retryable=True)
        text = await load_text(self.store, stage)
        info = activity.info()
        progress = resumed_progress(info.heartbeat_details)
        # Every heartbeat repeats the progress: a heartbeat without it would make a successor start over.
        details = progress
        parameters: dict[str, Any] = {**stage.stage.parameters, "attempt": info.attempt}
        pending: list[asyncio.Future[Any]] = []
        client = triton.InferenceServerClient(self.settings.triton_grpc_url)
        try:
            tokens = await heartbeating(self.published_tokens(stage, progress), details)
            first_offset, partition = progress.first_offset, progress.partition
            activity.logger.info("model %s attempt %d resumes at token %d", model, info.attempt, len(tokens))
            async for index, token_text in self.stream(client, model, text, stage, len(tokens), parameters):
                if index != len(tokens):
                    raise ApplicationError(f"model skipped from token {len(tokens)} to {index}")
                tokens.append(token_text)
                event = token_event(stage, index, token_text)
                if first_offset < 0:
                    # Wait for the first token's offset: it is where a successor starts reading.
                    published = await heartbeating(self.log.publish(event), details)
                    first_offset, partition = published.offset, published.partition
                else:
                    # A send Kafka refused fails the attempt now: its retry resumes after the acked prefix.
                    pending = unacknowledged(pending)
                    # send() itself waits while the producer's buffer is full (a broker away): keep beating.
                    pending.append(await heartbeating(self.log.send(event), details))
                details = StageProgress(tokens=len(tokens), first_offset=first_offset, partition=partition)
                activity.heartbeat(details)
            # Every token is acknowledged by Kafka before the stage may complete.
            await heartbeating(asyncio.gather(*pending), details)
        except (ApplicationError, KafkaError) as exc:
            for send in pending:
                send.add_done_callback(_retrieve)
            await self.outage_over(exc, model, details)
            raise
        finally:
            await client.close()
        output = "".join(tokens)
        data = output.encode("utf-8")
        if len(data) > self.settings.payload_threshold_bytes:
            return StageOutput(ref=await self.store.put("stages", data), tokens=len(tokens), attempt=info.attempt)
        return StageOutput(text=output, tokens=len(tokens), attempt=info.attempt)

    async def stream(
        self,
        client: triton.InferenceServerClient,
        model: str,
        text: str,
        stage: StageInput,
        start_index: int,
        parameters: dict[str, Any],
    ) -> AsyncIterator[tuple[int, str]]:
        """(index, text) per token; raises ApplicationError classified for the retry policy."""
        request = {
            "model_name": model,
            "inputs": model_inputs(model, text, stage, start_index),
            "outputs": [triton.InferRequestedOutput("TEXT"), triton.InferRequestedOutput("INDEX")],
            "request_id": f"{stage.job_id}/{stage.stage.name}/{uuid.uuid4().hex[:8]}",
            "parameters": parameters,
        }

        async def requests() -> AsyncIterator[dict[str, Any]]:
            # One request, then half-close: the aio client cannot ask for Triton's empty final response,
            # so the stream's clean end (gRPC OK after the last token) is what marks completion.
            yield request

        responses = client.stream_infer(inputs_iterator=requests())
        try:
            async for result, error in responses:
                if error is not None:
                    raise classify(str(error))
                if result is None:
                    continue
                response = result.get_response()
                final = response.parameters.get("triton_final_response")
                if result.as_numpy("INDEX") is None:
                    if final is not None and final.bool_param:
                        return
                    continue
                index = int(result.as_numpy("INDEX")[0])
                raw = result.as_numpy("TEXT")[0]
                yield index, raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
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
        client = AIOKafkaClient(bootstrap_servers=self.settings.kafka_bootstrap, request_timeout_ms=2000)
        try:
            await client.bootstrap()  # a metadata request: the broker is up and knows its topics
            return bool(client.cluster.partitions_for_topic(self.log.topic))
        except KafkaError:
            return False
        finally:
            await client.close()

    async def model_ready(self, model: str) -> bool:
        client = triton.InferenceServerClient(self.settings.triton_grpc_url)
        try:
            return bool(await client.is_model_ready(model))
        except Exception:
            return False
        finally:
            await client.close()

    async def published_tokens(self, stage: StageInput, progress: StageProgress) -> list[str]:
        """The tokens a previous attempt already published for this stage, read back from Kafka."""
        first_offset, partition = progress.first_offset, progress.partition
        if first_offset < 0 or partition < 0:
            return []
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
        )
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
                    event = parse_event(record.value)
                    if event.type == "token" and cursors.is_token_of(event.id, stage.stage_index):
                        found.setdefault(event.token.index, event.token.text)
        finally:
            await consumer.stop()
        # Only a gap-free prefix counts; the model regenerates anything after a gap.
        prefix: list[str] = []
        while len(prefix) in found:
            prefix.append(found[len(prefix)])
        return prefix


def resumed_progress(heartbeat_details: Sequence[Any]) -> StageProgress:
    """The progress the previous attempt heartbeated; none on a first attempt (or unreadable details)."""
    try:
        return StageProgress.model_validate(heartbeat_details[0]) if heartbeat_details else StageProgress()
    except ValidationError:
        return StageProgress()


async def heartbeating(awaitable: Awaitable[T], details: StageProgress) -> T:
    """Await something that can take a while (Kafka's acks while the broker restarts), heartbeating meanwhile:
    a live attempt must not look dead to Temporal, which would start a second one beside it."""
    task = asyncio.ensure_future(awaitable)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=1.0)
            if done:
                return task.result()
            activity.heartbeat(details)
    finally:
        if not task.done():
            task.cancel()


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
    now = Timestamp()
    now.GetCurrentTime()
    return JobEvent(
        id=cursors.token(stage.stage_index, index),
        job_id=stage.job_id,
        type="token",
        time=now,
        token=TokenEvent(index=index, text=text, stage=stage.stage.name),
    )
