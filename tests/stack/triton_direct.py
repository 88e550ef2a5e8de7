"""Triton called directly, past the pipeline: what a model streams for one request, asked for as the model
stage asks."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from typing import Any

import tritonclient.grpc.aio as triton

from jobstream.settings import Settings
from jobstream.workflow_io import GenerationParams as StageParams
from workers.pipeline.activities.model.triton_vllm import model_inputs


def normalise_prompt(prompt: str) -> str:
    """What the preprocess stage hands the model."""
    return " ".join(unicodedata.normalize("NFC", prompt).split())


async def triton_responses(
    settings: Settings, model: str, inputs: list[triton.InferInput], parameters: dict[str, object] | None = None
) -> list[dict[str, Any]]:
    """Every response a decoupled model streams for one request, each as {output name: its first value}."""
    client = triton.InferenceServerClient(settings.triton_grpc_url)

    async def requests() -> AsyncIterator[dict[str, object]]:
        yield {"model_name": model, "inputs": inputs, "parameters": {"token_delay_ms": 0, **(parameters or {})}}

    responses: list[dict[str, Any]] = []
    try:
        async for result, error in client.stream_infer(requests()):
            assert error is None, error
            outputs = {}
            for output in result.get_response().outputs:
                value = result.as_numpy(output.name).reshape(-1)[0]
                outputs[output.name] = value.decode("utf-8") if isinstance(value, bytes) else int(value)
            responses.append(outputs)
    finally:
        await client.close()
    return responses


async def triton_stream(
    settings: Settings, model: str, inputs: list[triton.InferInput], parameters: dict[str, object] | None = None
) -> list[str]:
    """Every token text a decoupled model streams for one request (the vLLM backend's contract)."""
    responses = await triton_responses(settings, model, inputs, parameters)
    return [text for response in responses if (text := response.get("text_output"))]


async def tinylm_tokens(
    settings: Settings, prompt: str, max_tokens: int, seed: int, temperature: float = 0.8
) -> list[str]:
    """tinylm's tokens for an already-normalised prompt, asked for as the model stage asks."""
    params = StageParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
    tokens = await triton_stream(settings, "tinylm", model_inputs(prompt, params, max_tokens))
    assert len(tokens) == max_tokens
    return tokens


async def keywords_tokens(settings: Settings, text: str, max_tokens: int = 64) -> list[str]:
    return await triton_stream(settings, "keywords", model_inputs(text, StageParams(), max_tokens))
