"""CPU stages: preprocess (load and normalise the input) and postprocess (shape the result)."""

from __future__ import annotations

import asyncio
import contextlib

from temporalio import activity
from temporalio.exceptions import ApplicationError

from jobstream import untrusted_text
from jobstream.payload_store import PayloadStore
from jobstream.workflow_io import StageInput, StageOutput
from workers.pipeline.activities.heartbeat import heartbeat_ticker

INVALID_INPUT = "InvalidInput"


async def load_text(store: PayloadStore, stage: StageInput, limit: int | None = None) -> str:
    """The stage's input text, fetched from MinIO (at most `limit` bytes) when it travelled as a reference."""
    if stage.text is not None:
        return stage.text
    if stage.ref is None:
        raise ApplicationError("the stage has no input", type=INVALID_INPUT, non_retryable=True)
    try:
        data = await store.get(stage.ref, limit)
    except ValueError as exc:
        raise ApplicationError(str(exc), type=INVALID_INPUT, non_retryable=True) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApplicationError(
            f"input is not valid UTF-8 (byte {exc.start})", type=INVALID_INPUT, non_retryable=True
        ) from exc


class TextActivities:
    def __init__(self, store: PayloadStore, threshold_bytes: int, max_input_bytes: int) -> None:
        self.store = store
        self.threshold_bytes = threshold_bytes
        # A job's input is read no further than this, whatever its reference points at.
        self.max_input_bytes = max_input_bytes

    @activity.defn(name="preprocess")
    async def preprocess(self, stage: StageInput) -> StageOutput:
        async with heartbeating():
            await drill_delay(stage)
            text = await load_text(self.store, stage, self.max_input_bytes)
            # An uploaded input reaches no check before this one (an inline prompt was checked at submit).
            if problem := untrusted_text.refusal(text):
                raise ApplicationError(f"input {problem}", type=INVALID_INPUT, non_retryable=True)
            text = " ".join((await untrusted_text.nfc(text)).split())
            if not text:
                raise ApplicationError("input is empty after normalisation", type=INVALID_INPUT, non_retryable=True)
            return await self.output(text, "stages")

    @activity.defn(name="postprocess")
    async def postprocess(self, stage: StageInput) -> StageOutput:
        # The result must equal the concatenated token stream, so postprocess never rewrites the text;
        # it decides where the result lives: inline, or in MinIO behind a presigned URL.
        async with heartbeating():
            await drill_delay(stage)
            return await self.output(await load_text(self.store, stage), "results")

    async def output(self, text: str, prefix: str) -> StageOutput:
        data = text.encode("utf-8")
        attempt = activity.info().attempt
        if len(data) <= self.threshold_bytes:
            return StageOutput(text=text, attempt=attempt)
        return StageOutput(ref=await self.store.put(prefix, data, "text/plain; charset=utf-8"), attempt=attempt)


def heartbeating() -> contextlib.AbstractAsyncContextManager[None]:
    """Heartbeat while a CPU stage runs, so its heartbeat timeout (seconds) notices a dead worker instead
    of its start-to-close timeout; a CPU stage makes no progress worth reporting, only that it is alive."""
    return heartbeat_ticker(lambda: (), every_s=1.0)


async def drill_delay(stage: StageInput) -> None:
    """The `delay_ms` stage parameter of the fault drills: a stage slow enough to crash a worker in it."""
    delay_ms = stage.stage.parameters.get("delay_ms", 0)
    if isinstance(delay_ms, int | float) and delay_ms > 0:
        await asyncio.sleep(delay_ms / 1000)
