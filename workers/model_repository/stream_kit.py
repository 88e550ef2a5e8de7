"""What jobstream's Python-backend models share: the request and response contract of Triton's vLLM backend,
decoupled streaming on a thread per request, the fault-drill knobs, and a clean end when the server goes.

Triton loads every directory of the model repository as a model and ignores plain files, so this module
sits at the repository's root; each model puts that directory on `sys.path` and subclasses `StreamingModel`.

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

import contextlib
import hashlib
import itertools
import json
import math
import os
import signal
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import triton_python_backend_utils as pb_utils

MAX_TOKENS_LIMIT = 4096
KNOBS = ("token_delay_ms", "fail_at_token", "fail_attempts", "resample_per_attempt")
RETURNS = ("return_finish_reason", "return_num_input_tokens", "return_num_output_tokens")
SHM_PREFIX = "triton_python_backend_shm_region_"
PARENT_CHECK_S = 0.5


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


class Generation:
    """What a model makes of one request: the input's length in tokens and the output, token by token."""

    def __init__(self, num_input_tokens: int, tokens: Iterator[str]) -> None:
        self.num_input_tokens = num_input_tokens
        self.tokens = tokens


class StreamingModel(ABC):
    """The Triton entry points; a model supplies `load` and `generate`."""

    name = "model"
    knob_defaults: ClassVar[dict[str, str]] = {
        "token_delay_ms": "0",
        "fail_at_token": "-1",
        "fail_attempts": "0",
        "resample_per_attempt": "0",
    }

    @abstractmethod
    def load(self, args: dict[str, str], parameters: dict[str, str]) -> str:
        """Load the model's weights; returns a line for the log."""

    @abstractmethod
    def generate(self, request: Request) -> Generation:
        """May raise InvalidArgument for input the model cannot take."""

    # -- Triton entry points ---------------------------------------------------------------------------

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self.name = str(config.get("name", self.name))
        parameters = {key: str(value.get("string_value", "")) for key, value in config.get("parameters", {}).items()}
        self.defaults = {key: parameters.get(key, fallback) for key, fallback in self.knob_defaults.items()}
        started = time.monotonic()
        loaded = self.load(args, parameters)
        self.stopping = threading.Event()
        self.sigterm_watch = _stop_on_sigterm(self.stopping, self.name)
        _exit_when_orphaned(self.name)
        self.lock = threading.Lock()
        self.streams: set[threading.Thread] = set()
        pb_utils.Logger.log_info(
            f"{self.name}: {loaded} in {time.monotonic() - started:.2f}s; defaults {self.defaults}"
        )

    def execute(self, requests: list[Any]) -> None:
        """Start one thread per request and return at once, so streams run concurrently."""
        for triton_request in requests:
            sender = triton_request.get_response_sender()
            try:
                request = self.parse(triton_request)
                generation = self.generate(request)
            except InvalidArgument as exc:
                _finish_with_error(sender, f"INVALID_ARGUMENT: {exc}", pb_utils.TritonError.INVALID_ARG)
                continue
            thread = threading.Thread(
                target=self._respond, args=(sender, request, generation), name=f"{self.name}-{request.request_id}"
            )
            thread.daemon = True
            with self.lock:
                self.streams.add(thread)
            thread.start()
        return None

    def finalize(self) -> None:
        self.stopping.set()
        with self.lock:
            streams = list(self.streams)
        for thread in streams:
            thread.join(timeout=2.0)

    # -- the contract ----------------------------------------------------------------------------------

    def parse(self, triton_request: Any) -> Request:
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
        knobs = {**self.defaults, **{k: v for k, v in overrides.items() if k in KNOBS}}
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

    def _respond(self, sender: Any, request: Request, generation: Generation) -> None:
        sent = 0
        tag = f"{self.name}: stream {request.request_id!r}"
        try:
            pb_utils.Logger.log_info(
                f"{tag} start input_tokens={generation.num_input_tokens} input_sha256={request.digest} "
                f"max_tokens={request.sampling.max_tokens} seed={request.sampling.seed} "
                f"temperature={request.sampling.temperature} attempt={request.attempt}"
            )
            pieces: list[str] = []
            reason = ""
            limit = request.sampling.max_tokens
            for text, stopped in _with_stop(itertools.islice(generation.tokens, limit), request.sampling):
                if self._interrupted(sender, request, sent, tag):
                    return
                pieces.append(text)
                sent += 1
                reason = "stop" if stopped is not None else "length" if sent == limit else ""
                # Sent at once; the last one (known at max_tokens or at a stop sequence) flagged final, as
                # vLLM does.
                if request.stream and (text or reason):
                    flags = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if reason else 0
                    sender.send(self._response(request, generation, text, reason or None), flags=flags)
                if reason:
                    break
            final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
            if not reason:
                reason = "stop"  # the model ended by itself (its end of sequence) before max_tokens
                if request.stream:
                    sender.send(self._response(request, generation, "", reason), flags=final)
            if not request.stream:
                whole = (request.text if request.include_input else "") + "".join(pieces)
                sender.send(self._response(request, generation, whole, reason, tokens=sent), flags=final)
            pb_utils.Logger.log_info(f"{tag} done, {sent} tokens, finish_reason={reason}")
        except Exception as exc:
            pb_utils.Logger.log_error(f"{tag} failed after {sent} tokens: {exc!r}")
            with contextlib.suppress(Exception):  # the client may be gone
                _finish_with_error(sender, f"INTERNAL: {exc}", None)
        finally:
            with self.lock:
                self.streams.discard(threading.current_thread())

    def _interrupted(self, sender: Any, request: Request, sent: int, tag: str) -> bool:
        """Before token `sent`: its emulated GPU time, then whether the stream ended there (Triton shutting
        down, the request cancelled, or an injected failure), its last response sent."""
        if request.drills.token_delay_s > 0:
            self.stopping.wait(request.drills.token_delay_s)
        if self.stopping.is_set():
            _finish_with_error(sender, "UNAVAILABLE: Triton is shutting down", pb_utils.TritonError.UNAVAILABLE)
            return True
        if sender.is_cancelled():
            pb_utils.Logger.log_info(f"{tag} cancelled after {sent} tokens")
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            return True
        if request.drills.fails(sent, request.attempt):
            pb_utils.Logger.log_warn(f"{tag} injected OOM at token {sent} (attempt {request.attempt})")
            _finish_with_error(
                sender,
                f"GPU out of memory (injected at token {sent}, attempt {request.attempt} of "
                f"{request.drills.fail_attempts} failing)",
                pb_utils.TritonError.UNAVAILABLE,
            )
            return True
        return False

    @staticmethod
    def _response(request: Request, generation: Generation, text: str, reason: str | None, tokens: int = 1) -> Any:
        outputs = [pb_utils.Tensor("text_output", np.array([text.encode("utf-8")], dtype=np.object_))]
        if "return_finish_reason" in request.returns:
            outputs.append(pb_utils.Tensor("finish_reason", np.array([str(reason).encode()], dtype=np.object_)))
        if "return_num_input_tokens" in request.returns:
            outputs.append(
                pb_utils.Tensor("num_input_tokens", np.array([generation.num_input_tokens], dtype=np.uint32))
            )
        if "return_num_output_tokens" in request.returns:
            outputs.append(pb_utils.Tensor("num_output_tokens", np.array([tokens if text else 0], dtype=np.uint32)))
        return pb_utils.InferenceResponse(output_tensors=outputs)


def _with_stop(tokens: Iterator[str], sampling: Sampling) -> Iterator[tuple[str, str | None]]:
    """(text, stop string or None) per token; the output ends before the first stop string, which is not
    part of it (vLLM's default). A token that completes a stop string is cut where the stop string starts."""
    output = ""
    for text in tokens:
        start = len(output)
        output += text
        hits = [(output.find(stop, max(0, start - len(stop) + 1)), stop) for stop in sampling.stop]
        found = [(at, stop) for at, stop in hits if at >= 0]
        if found:
            at, stop = min(found)
            yield output[start : max(at, start)], stop
            return
        yield text, None


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


def _finish_with_error(sender: Any, message: str, code: Any | None) -> None:
    error = pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)
    sender.send(pb_utils.InferenceResponse(error=error), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)


def _stop_on_sigterm(stopping: threading.Event, name: str) -> tuple[socket.socket, socket.socket] | None:
    """Set `stopping` when this stub process gets SIGTERM.

    Triton keeps a decoupled model loaded while any of its streams is open, so at shutdown it would
    wait for every stream to run to its end (well past --exit-timeout-secs, and it exits non-zero
    leaving a /dev/shm region). The stub ignores SIGTERM itself; when the whole process group is
    signalled (jobstream's supervisor does `killpg`), the streams end at once with a retryable
    `UNAVAILABLE` error instead. Python delivers signals to the main thread only, which the stub's
    main thread rarely runs, hence the wakeup fd and a watcher thread. Returns the socket pair (keep
    it referenced), or None when not called from the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def watch() -> None:
        while not stopping.is_set():
            data = reader.recv(64)
            if not data:
                return
            if signal.SIGTERM in data:
                pb_utils.Logger.log_info(f"{name}: SIGTERM, ending open streams (UNAVAILABLE)")
                stopping.set()

    threading.Thread(target=watch, name=f"{name}-sigterm", daemon=True).start()
    return reader, writer


def _exit_when_orphaned(name: str) -> None:
    """A stub whose server died (SIGKILL: no finalize) is reparented and would live on, holding its shared
    memory. When its parent changes, it removes its own region and exits."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        try:
            with contextlib.suppress(OSError):
                arguments = Path("/proc/self/cmdline").read_bytes().split(b"\0")
                for region in (a.decode() for a in arguments if a.startswith(SHM_PREFIX.encode())):
                    os.unlink(f"/dev/shm/{region}")
            # Not Triton's logger: it talks to the dead server. Its log file may be gone too.
            with contextlib.suppress(OSError):
                os.write(2, f"{name}: the Triton server (pid {parent}) is gone; exiting\n".encode())
        finally:
            os._exit(0)

    threading.Thread(target=watch, name=f"{name}-parent", daemon=True).start()
