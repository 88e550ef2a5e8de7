"""The request contract of jobstream's Python-backend models: Triton's vLLM backend's, plus fault-drill knobs.

A sibling of `stream_kit.py` at the model repository's root (Triton ignores plain files there); `stream_kit`
re-exports what the models use. This module reads a Triton request into a `Request`; `stream_kit`'s
`StreamingModel` sends the responses.

The contract (triton-inference-server/vllm_backend): inputs `text_input` (string), optional `stream`,
`sampling_parameters` (a JSON object: max_tokens, temperature, top_p, seed, stop; numbers may be strings),
`exclude_input_in_output`, `return_finish_reason`, `return_num_input_tokens`, `return_num_output_tokens`.
Streaming, each response carries the new text in `text_output` (one token here), the last one flagged
COMPLETE_FINAL; `finish_reason` is "None" until the last response ("length" or "stop"), `num_input_tokens`
the prompt's length in tokens, `num_output_tokens` the tokens in this response. Without `stream`, one
response carries the whole output (preceded by the input unless `exclude_input_in_output`).

Fault-drill knobs (config `parameters`, overridden per request by Triton request parameters):
token_delay_ms (emulated GPU time per token), fail_at_token (-1 = off: the request's own token count at
which to fail), fail_attempts (attempts <= this fail), resample_per_attempt (1: the sampler also depends on
the attempt, like a batched GPU model that is not reproducible); the request parameter `attempt` (1-based)
says which attempt this is.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import triton_python_backend_utils as pb_utils

MAX_TOKENS_LIMIT = 4096
KNOBS = ("token_delay_ms", "fail_at_token", "fail_attempts", "resample_per_attempt")
RETURNS = ("return_finish_reason", "return_num_input_tokens", "return_num_output_tokens")


class InvalidArgument(ValueError):
    """Bad input: reported as `INVALID_ARGUMENT: <message>`, never retried."""


@dataclass(frozen=True)
class Sampling:
    """vLLM's sampling parameters, with vLLM's defaults (seed None: a fresh one per request)."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Drills:
    """The fault-drill knobs of one request, apart from the contract: a real vLLM model has none of them."""

    token_delay_s: float = 0.0  # emulated GPU time per token
    fail_at_token: int = -1  # the request's own token count at which to fail (-1: never)
    fail_attempts: int = 0  # attempts up to this one fail there
    resample_per_attempt: bool = False  # the sampler also depends on the attempt (not reproducible)

    def fails(self, sent: int, attempt: int) -> bool:
        return sent == self.fail_at_token and attempt <= self.fail_attempts


@dataclass(frozen=True)
class Request:
    request_id: str
    text: str
    sampling: Sampling
    stream: bool
    include_input: bool
    returns: frozenset[str]
    attempt: int  # 1-based, from the request parameter `attempt` (the model stage sends it)
    drills: Drills
    # A digest of what the model was sent, logged so a test can check what a retry asked for.
    digest: str = field(default="")


def parse_request(triton_request: Any, defaults: dict[str, str]) -> Request:
    """A Triton request, read as vLLM's backend reads it; `defaults` are the model's fault-drill knobs, which
    the request's parameters override."""
    raw = _scalar(triton_request, "text_input")
    if raw is None:
        raise InvalidArgument("text_input is required")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    except UnicodeDecodeError:
        raise InvalidArgument("text_input is not valid UTF-8") from None
    if not text.strip():
        raise InvalidArgument("text_input is empty")
    stream = bool(_scalar(triton_request, "stream") or False)
    exclude = _scalar(triton_request, "exclude_input_in_output")
    include_input = not stream if exclude is None else not bool(exclude)
    if include_input and stream:
        raise InvalidArgument("when streaming, exclude_input_in_output = False is not allowed")
    raw_sampling = _scalar(triton_request, "sampling_parameters")
    sampling = parse_sampling(raw_sampling.decode("utf-8") if isinstance(raw_sampling, bytes) else raw_sampling)
    try:
        overrides = json.loads(triton_request.parameters() or "{}")
    except ValueError:
        overrides = {}
    knobs = {**defaults, **{k: v for k, v in overrides.items() if k in KNOBS}}
    return Request(
        request_id=str(triton_request.request_id() or ""),
        text=text,
        sampling=sampling,
        stream=stream,
        include_input=include_input,
        returns=frozenset(name for name in RETURNS if _scalar(triton_request, name)),
        attempt=_int_knob("attempt", overrides.get("attempt", 1)),
        drills=Drills(
            token_delay_s=_float_knob("token_delay_ms", knobs["token_delay_ms"]) / 1000.0,
            fail_at_token=_int_knob("fail_at_token", knobs["fail_at_token"]),
            fail_attempts=_int_knob("fail_attempts", knobs["fail_attempts"]),
            resample_per_attempt=_int_knob("resample_per_attempt", knobs["resample_per_attempt"]) != 0,
        ),
        digest=hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
    )


def parse_sampling(raw: str | None) -> Sampling:
    """The `sampling_parameters` JSON, read as vLLM reads it (numbers may come as strings)."""
    if raw is None:
        return Sampling()
    try:
        values = json.loads(raw)
    except ValueError:
        raise InvalidArgument("sampling_parameters is not JSON") from None
    if not isinstance(values, dict):
        raise InvalidArgument("sampling_parameters must be a JSON object")
    values = {key: value for key, value in values.items() if value is not None}
    defaults = Sampling()
    try:
        max_tokens = int(values.get("max_tokens", defaults.max_tokens))
        temperature = float(values.get("temperature", defaults.temperature))
        top_p = float(values.get("top_p", defaults.top_p))
        seed = int(values["seed"]) if "seed" in values else None
    except (TypeError, ValueError):
        raise InvalidArgument("sampling_parameters: max_tokens, temperature, top_p and seed must be numbers") from None
    stop = values.get("stop", [])
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise InvalidArgument("sampling_parameters: stop must be a string or a list of non-empty strings")
    if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise InvalidArgument(f"sampling_parameters: max_tokens must be between 1 and {MAX_TOKENS_LIMIT}")
    if not (math.isfinite(temperature) and 0.0 <= temperature <= 2.0):
        raise InvalidArgument("sampling_parameters: temperature must be between 0 and 2")
    if not (math.isfinite(top_p) and 0.0 < top_p <= 1.0):
        raise InvalidArgument("sampling_parameters: top_p must be in (0, 1]")
    return Sampling(max_tokens, temperature, top_p, seed, tuple(stop))


def _scalar(request: Any, name: str) -> Any | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    values = tensor.as_numpy().reshape(-1)
    if values.size != 1:
        raise InvalidArgument(f"{name} must hold exactly one value, got {values.size}")
    return values[0]


def _int_knob(name: str, value: Any) -> int:
    try:
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        raise InvalidArgument(f"parameter {name} must be an integer, got {value!r}") from None


def _float_knob(name: str, value: Any) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"parameter {name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise InvalidArgument(f"parameter {name} must be a number >= 0, got {value!r}")
    return number
