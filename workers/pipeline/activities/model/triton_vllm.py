"""Triton's vLLM-backend contract, as the model stage speaks it: `text_input`, `stream`, `sampling_parameters`,
`exclude_input_in_output` in; `text_output`, `finish_reason`, `num_input_tokens` out. A stage can point at a
real vLLM model in Triton or at the local models, which speak the same contract. No Temporal, no Kafka here."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc.aio as triton
from temporalio.exceptions import ApplicationError
from tritonclient.utils import InferenceServerException

from jobstream.settings import Settings
from jobstream.workflow_io import GenerationParams
from workers.pipeline.activities.text import INVALID_INPUT

GPU_OUT_OF_MEMORY = "GpuOutOfMemory"
TRITON_UNAVAILABLE = "TritonUnavailable"
OPTIONAL_OUTPUTS = ("return_finish_reason", "return_num_input_tokens", "return_num_output_tokens")
OUTPUTS = ("text_output", "finish_reason", "num_input_tokens", "num_output_tokens")


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


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: the model, the text it continues, how many tokens at most, and Triton's request id and
    parameters (the attempt number, the stage's drill knobs)."""

    model: str
    request_id: str
    text: str
    params: GenerationParams
    max_tokens: int
    parameters: dict[str, Any]


def piece_of(result: Any) -> Piece:
    """A Triton InferResult of the contract's outputs, as a Piece."""

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


def classify(message: str) -> ApplicationError:
    """Map a model or server error onto the retry policy's vocabulary."""
    if "INVALID_ARGUMENT" in message:
        return ApplicationError(message, type=INVALID_INPUT, non_retryable=True)
    if "out of memory" in message.lower():
        return ApplicationError(message, type=GPU_OUT_OF_MEMORY)
    return ApplicationError(message, type=TRITON_UNAVAILABLE)


def triton_models(settings: Settings) -> TritonModels:
    """The settings' Triton (TLS as they say), through one gRPC channel."""
    ca = settings.triton_ca_file
    client = triton.InferenceServerClient(
        settings.triton_grpc_url, ssl=settings.triton_ssl, root_certificates=str(ca) if ca else None
    )
    return TritonModels(client)


class TritonModels:
    """The models behind one Triton server, through one gRPC channel for every attempt a worker runs (it
    reconnects by itself)."""

    def __init__(self, client: triton.InferenceServerClient) -> None:
        self.client = client

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Piece]:
        """The model's responses; raises ApplicationError classified for the retry policy."""
        call = {
            "model_name": request.model,
            "inputs": model_inputs(request.text, request.params, request.max_tokens),
            "outputs": [triton.InferRequestedOutput(name) for name in OUTPUTS],
            "request_id": request.request_id,
            "parameters": request.parameters,
        }

        async def requests() -> AsyncIterator[dict[str, Any]]:
            # One request, then half-close: the aio client cannot ask for Triton's empty final response,
            # so the stream's clean end (gRPC OK after the last response) is what marks completion.
            yield call

        responses = self.client.stream_infer(inputs_iterator=requests())
        try:
            async for result, error in responses:
                if error is not None:
                    raise classify(str(error))
                if result is None:
                    continue
                yield piece_of(result)
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

    async def ready(self, model: str) -> bool:
        try:
            return bool(await self.client.is_model_ready(model))
        except Exception:
            return False

    async def close(self) -> None:
        await self.client.close()
