"""The baseline: tinylm streamed straight from Triton (aio `stream_infer`), stamped at the client.

Same model, prompt, seed, temperature and token count as the pipeline's model stage, and the same tensor
types the GPU worker sends (workers/pipeline/activities/model/triton_vllm.py), so both paths stream identical
tokens at the same emulated GPU pace.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import tritonclient.grpc.aio as triton

from bench.common import SEED, TEMPERATURE
from jobstream.workflow_io import GenerationParams
from workers.pipeline.activities.model.triton_vllm import OUTPUTS, model_inputs


@dataclass
class DirectStream:
    started: float  # time.time() just before stream_infer was called
    received: list[float] = field(default_factory=list)  # per token, time.time() as the client got it
    texts: list[str] = field(default_factory=list)


def tinylm_inputs(prompt: str, max_tokens: int, seed: int = SEED) -> list[triton.InferInput]:
    """The request the model stage sends (the vLLM backend's contract), so the baseline asks what we ask."""
    return model_inputs(prompt, GenerationParams(max_tokens=max_tokens, temperature=TEMPERATURE, seed=seed), max_tokens)


async def tinylm_stream(
    client: triton.InferenceServerClient,
    prompt: str,
    max_tokens: int,
    token_delay_ms: int | None,
    seed: int = SEED,
) -> AsyncIterator[str]:
    """The token texts as Triton streams them; `token_delay_ms` None keeps the model's default."""
    parameters: dict[str, Any] = {} if token_delay_ms is None else {"token_delay_ms": token_delay_ms}
    request = {
        "model_name": "tinylm",
        "inputs": tinylm_inputs(prompt, max_tokens, seed),
        "outputs": [triton.InferRequestedOutput(name) for name in OUTPUTS],
        "parameters": parameters,
    }

    async def requests() -> AsyncIterator[dict[str, Any]]:
        yield request

    async for result, error in client.stream_infer(inputs_iterator=requests()):
        if error is not None:
            raise RuntimeError(f"Triton: {error}")
        if result is None:
            continue
        raw = result.as_numpy("text_output")
        text = "" if raw is None or raw.size == 0 else raw.reshape(-1)[0].decode("utf-8")
        if text:
            yield text
        # The stream ends by itself after the final response (the request side is already closed).


async def direct_stream(
    client: triton.InferenceServerClient, prompt: str, max_tokens: int, token_delay_ms: int | None, seed: int = SEED
) -> DirectStream:
    run = DirectStream(started=time.time())
    async for text in tinylm_stream(client, prompt, max_tokens, token_delay_ms, seed):
        run.received.append(time.time())
        run.texts.append(text)
    if len(run.texts) != max_tokens:
        raise RuntimeError(f"Triton streamed {len(run.texts)} tokens, expected {max_tokens}")
    return run
