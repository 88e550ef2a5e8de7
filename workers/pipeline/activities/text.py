"""CPU stages: preprocess (load and normalise the input) and postprocess (shape the result)."""

from __future__ import annotations

import unicodedata

from temporalio import activity
from temporalio.exceptions import ApplicationError

from jobstream.payload_store import PayloadStore
from workers.pipeline.types import StageInput, StageOutput

INVALID_INPUT = "InvalidInput"


async def load_text(store: PayloadStore, stage: StageInput) -> str:
    """The stage's input text, fetched from MinIO when it travelled as a reference."""
    if stage.text is not None:
        return stage.text
    if stage.ref is None:
        raise ApplicationError("the stage has no input", type=INVALID_INPUT, non_retryable=True)
    try:
        data = await store.get(stage.ref)
    except ValueError as exc:
        raise ApplicationError(str(exc), type=INVALID_INPUT, non_retryable=True) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApplicationError(
            f"input is not valid UTF-8 (byte {exc.start})", type=INVALID_INPUT, non_retryable=True
        ) from exc


class TextActivities:
    def __init__(self, store: PayloadStore, threshold_bytes: int) -> None:
        self.store = store
        self.threshold_bytes = threshold_bytes

    @activity.defn(name="preprocess")
    async def preprocess(self, stage: StageInput) -> StageOutput:
        text = unicodedata.normalize("NFC", await load_text(self.store, stage))
        text = " ".join(text.split())
        if not text:
            raise ApplicationError("input is empty after normalisation", type=INVALID_INPUT, non_retryable=True)
        return await self.output(text, "stages")

    @activity.defn(name="postprocess")
    async def postprocess(self, stage: StageInput) -> StageOutput:
        # The result must equal the concatenated token stream, so postprocess never rewrites the text;
        # it decides where the result lives: inline, or in MinIO behind a presigned URL.
        return await self.output(await load_text(self.store, stage), "results")

    async def output(self, text: str, prefix: str) -> StageOutput:
        data = text.encode("utf-8")
        attempt = activity.info().attempt
        if len(data) <= self.threshold_bytes:
            return StageOutput(text=text, attempt=attempt)
        return StageOutput(ref=await self.store.put(prefix, data, "text/plain; charset=utf-8"), attempt=attempt)
