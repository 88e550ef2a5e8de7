"""The baseline: tinylm streamed straight from Triton (aio `stream_infer`), stamped at the client.

Same model, prompt, seed, temperature and token count as the pipeline's model stage, and the same tensor
types the GPU worker sends (workers/pipeline/activities/inference.py), so both paths stream identical
tokens at the same emulated GPU pace.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tritonclient.grpc.aio as triton

from bench.common import SEED, TEMPERATURE


@dataclass
class DirectStream:
    started: float  # time.time() just before stream_infer was called
    received: list[float] = field(default_factory=list)  # per token, time.time() as the client got it
    texts: list[str] = field(default_factory=list)


def _tensor(name: str, value: Any, dtype: Any, kind: str) -> triton.InferInput:
    tensor = triton.InferInput(name, [1], kind)
    tensor.set_data_from_numpy(np.array([value], dtype=dtype))
    return tensor


def tinylm_inputs(prompt: str, max_tokens: int, seed: int = SEED, start_index: int = 0) -> list[triton.InferInput]:
    return [
        _tensor("PROMPT", prompt.encode("utf-8"), np.object_, "BYTES"),
        _tensor("MAX_TOKENS", max_tokens, np.int32, "INT32"),
        _tensor("TEMPERATURE", TEMPERATURE, np.float32, "FP32"),
        _tensor("SEED", seed, np.int64, "INT64"),
        _tensor("START_INDEX", start_index, np.int32, "INT32"),
    ]


async def tinylm_stream(
    client: triton.InferenceServerClient,
    prompt: str,
    max_tokens: int,
    token_delay_ms: int | None,
    seed: int = SEED,
) -> AsyncIterator[tuple[int, str]]:
    """(index, text) per token as Triton streams them; `token_delay_ms` None keeps the model's default."""
    parameters: dict[str, Any] = {} if token_delay_ms is None else {"token_delay_ms": token_delay_ms}
    request = {
        "model_name": "tinylm",
        "inputs": tinylm_inputs(prompt, max_tokens, seed),
        "outputs": [triton.InferRequestedOutput("TEXT"), triton.InferRequestedOutput("INDEX")],
        "parameters": parameters,
    }

    async def requests() -> AsyncIterator[dict[str, Any]]:
        yield request

    async for result, error in client.stream_infer(inputs_iterator=requests()):
        if error is not None:
            raise RuntimeError(f"Triton: {error}")
        if result is None or result.as_numpy("INDEX") is None:
            continue
        raw = result.as_numpy("TEXT")[0]
        yield int(result.as_numpy("INDEX")[0]), raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


async def direct_stream(
    client: triton.InferenceServerClient, prompt: str, max_tokens: int, token_delay_ms: int | None, seed: int = SEED
) -> DirectStream:
    run = DirectStream(started=time.time())
    async for _, text in tinylm_stream(client, prompt, max_tokens, token_delay_ms, seed):
        run.received.append(time.time())
        run.texts.append(text)
    if len(run.texts) != max_tokens:
        raise RuntimeError(f"Triton streamed {len(run.texts)} tokens, expected {max_tokens}")
    return run
