"""tinylm: a streaming text-generation model for Triton's Python backend (decoupled).

A word-level 4-gram language model with interpolated Kneser-Ney smoothing, trained from the shipped
corpus by `workers/tinylm/train.py` into `weights.npz` next to this file. numpy and the standard
library only, so the same repository loads in the official `tritonserver` container.

Inputs: PROMPT (string), MAX_TOKENS (int32), optional TEMPERATURE (fp32, 0 = greedy, default 0.8),
SEED (int64, default 0) and START_INDEX (int32, default 0: the first token index to emit; the skipped
prefix is regenerated without delay, so a retry resumes exactly where the last attempt stopped).
Outputs, one response per token: TEXT (the token with its leading space) and INDEX; then an empty
response flagged COMPLETE_FINAL. Errors end the stream with one error response:
`INVALID_ARGUMENT: ...` (bad input, do not retry) or `GPU out of memory ...` (injected, retryable).

Test knobs (config `parameters`, overridden per request by Triton request parameters):
token_delay_ms (emulated GPU time per token), fail_at_token (-1 = off), fail_attempts (0); the request
parameter `attempt` (1-based) says which attempt this is: attempts <= fail_attempts fail at
fail_at_token.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

MAX_TOKENS_LIMIT = 4096
DEFAULT_TEMPERATURE = 0.8
NO_REPEAT = 4  # no 4-gram of tokens appears twice in prompt + output
KNOBS = ("token_delay_ms", "fail_at_token", "fail_attempts")


class InvalidArgument(ValueError):
    """Bad input: reported as `INVALID_ARGUMENT: <message>`, never retried."""


class NGramLM:
    """Interpolated Kneser-Ney n-gram model, read from the arrays train.py writes."""

    def __init__(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        self.order = int(arrays["order"])
        self.vocab: list[str] = [str(w) for w in arrays["vocab"]]
        self.surface: list[str] = [str(w) for w in arrays["surface"]]
        self.attach_left: list[bool] = [bool(x) for x in arrays["attach_left"]]
        self.attach_right: list[bool] = [bool(x) for x in arrays["attach_right"]]
        self.size = len(self.vocab)
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.p0: npt.NDArray[np.float64] = arrays["p0"].astype(np.float64)
        self.tables = [
            (
                arrays[f"ctx{k}_keys"],
                arrays[f"ctx{k}_offsets"],
                arrays[f"ctx{k}_gamma"],
                arrays[f"ctx{k}_next"],
                arrays[f"ctx{k}_alpha"],
            )
            for k in range(1, self.order)
        ]
        self.token_re = re.compile(str(arrays["token_pattern"]))
        self.open_quote_re = re.compile(str(arrays["open_quote_pattern"]))
        self.open_quote = str(arrays["open_quote"])
        self.close_quote = str(arrays["close_quote"])
        self.paragraph = self.ids["<p>"]

    def encode(self, text: str) -> list[int]:
        normalized = self.open_quote_re.sub(self.open_quote, text).replace('"', self.close_quote)
        return [self.ids.get(token, 0) for token in self.token_re.findall(normalized)]

    def distribution(self, history: list[int]) -> npt.NDArray[np.float64]:
        """P(next | history) over the vocabulary (never the unknown token)."""
        p = self.p0.copy()
        size = self.size
        for k, (keys, offsets, gamma, nxt, alpha) in enumerate(self.tables, start=1):
            if len(history) < k:
                break
            key = 0
            for token in history[-k:]:
                key = key * size + token
            at = int(np.searchsorted(keys, key))
            if at == len(keys) or int(keys[at]) != key:
                continue  # unseen context: this order adds nothing, the lower one stands
            lo, hi = int(offsets[at]), int(offsets[at + 1])
            p *= gamma[at]
            p[nxt[lo:hi]] += alpha[lo:hi]
        p[0] = 0.0
        return p

    def generate(
        self, prompt: str, max_tokens: int, temperature: float, seed: int, min_p: float = 0.05
    ) -> Iterator[tuple[int, str]]:
        """Yield (index, text) for tokens 0..max_tokens-1; deterministic for the same arguments.

        Sampling: min-p filtering (tokens below min_p x the likeliest one are dropped: they are mostly
        backoff noise), then temperature (0 = greedy); an n-gram of NO_REPEAT tokens never repeats
        (keeps greedy decoding out of loops).
        """
        rng = np.random.Generator(np.random.PCG64(seed % 2**64))
        history = [self.paragraph, *self.encode(prompt)]
        n = NO_REPEAT - 1
        seen: dict[tuple[int, ...], list[int]] = {}
        for at in range(n, len(history)):
            seen.setdefault(tuple(history[at - n : at]), []).append(history[at])
        prev: int | None = history[-1] if len(history) > 1 else None
        no_space = prompt[-1:].isspace()
        for index in range(max_tokens):
            p = self.distribution(history[-(self.order - 1) :])
            banned = seen.get(tuple(history[-n:]))
            if banned:
                kept = p.copy()
                kept[banned] = 0.0
                if kept.any():
                    p = kept
            p[p < min_p * p.max()] = 0.0
            u = float(rng.random())
            if temperature == 0.0:
                token = int(np.argmax(p))
            else:
                if temperature != 1.0:
                    p = np.power(p / p.max(), 1.0 / temperature)
                cdf = np.cumsum(p)
                token = min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), self.size - 1)
                while p[token] == 0.0 and token > 0:  # guard rounding at the edges
                    token -= 1
            glue = no_space or self.attach_left[token] or (prev is not None and self.attach_right[prev])
            yield index, ("" if glue else " ") + self.surface[token]
            seen.setdefault(tuple(history[-n:]), []).append(token)
            history.append(token)
            prev, no_space = token, False


@dataclass(frozen=True)
class Job:
    request_id: str
    prompt: str
    max_tokens: int
    temperature: float
    seed: int
    start_index: int
    token_delay_s: float
    fail_at_token: int
    fail_attempts: int
    attempt: int


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


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        self.model_config = json.loads(args["model_config"])
        self.name = str(self.model_config.get("name", "tinylm"))
        weights = Path(args["model_repository"]) / args["model_version"] / "weights.npz"
        if not weights.exists():  # model_repository is the model's directory; be lenient anyway
            weights = Path(__file__).resolve().parent / "weights.npz"
        started = time.monotonic()
        if not weights.exists():
            raise FileNotFoundError(
                f"{weights} is missing: train it with `python -m workers.tinylm.train` (jobstream's bootstrap does)"
            )
        self.lm = NGramLM(weights)
        params = self.model_config.get("parameters", {})
        self.defaults: dict[str, str] = {
            key: str(params.get(key, {}).get("string_value", fallback))
            for key, fallback in (("token_delay_ms", "5"), ("fail_at_token", "-1"), ("fail_attempts", "0"))
        }
        self.min_p = float(params.get("min_p", {}).get("string_value", "0.05"))
        self.stopping = threading.Event()
        self.sigterm_watch = _stop_on_sigterm(self.stopping, self.name)
        self.lock = threading.Lock()
        self.streams: set[threading.Thread] = set()
        pb_utils.Logger.log_info(
            f"{self.name}: loaded {weights} ({self.lm.size} tokens, order {self.lm.order}, "
            f"min_p {self.min_p}) in {time.monotonic() - started:.2f}s; defaults {self.defaults}"
        )

    # -- request parsing -------------------------------------------------------------------------

    def _parse(self, request: Any) -> Job:
        raw = _scalar(request, "PROMPT")
        if raw is None:
            raise InvalidArgument("PROMPT is required")
        try:
            prompt = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError:
            raise InvalidArgument("PROMPT is not valid UTF-8") from None
        if not prompt.strip():
            raise InvalidArgument("PROMPT is empty")

        value = _scalar(request, "MAX_TOKENS")
        if value is None:
            raise InvalidArgument("MAX_TOKENS is required")
        max_tokens = int(value)
        if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
            raise InvalidArgument(f"MAX_TOKENS must be between 1 and {MAX_TOKENS_LIMIT}, got {max_tokens}")

        value = _scalar(request, "TEMPERATURE")
        temperature = DEFAULT_TEMPERATURE if value is None else float(value)
        if not (math.isfinite(temperature) and 0.0 <= temperature <= 2.0):
            raise InvalidArgument(f"TEMPERATURE must be between 0 and 2, got {temperature}")

        value = _scalar(request, "SEED")
        seed = 0 if value is None else int(value)

        value = _scalar(request, "START_INDEX")
        start_index = 0 if value is None else int(value)
        if not 0 <= start_index <= max_tokens:
            raise InvalidArgument(f"START_INDEX must be between 0 and MAX_TOKENS ({max_tokens}), got {start_index}")

        try:
            overrides = json.loads(request.parameters() or "{}")
        except ValueError:
            overrides = {}
        knobs: dict[str, Any] = {**self.defaults, **{k: v for k, v in overrides.items() if k in KNOBS}}
        attempt = _int_knob("attempt", overrides.get("attempt", 1))
        return Job(
            request_id=str(request.request_id() or ""),
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            start_index=start_index,
            token_delay_s=_float_knob("token_delay_ms", knobs["token_delay_ms"]) / 1000.0,
            fail_at_token=_int_knob("fail_at_token", knobs["fail_at_token"]),
            fail_attempts=_int_knob("fail_attempts", knobs["fail_attempts"]),
            attempt=attempt,
        )

    # -- Triton entry points ---------------------------------------------------------------------

    def execute(self, requests: list[Any]) -> None:
        """Start one streaming thread per request and return at once (streams run concurrently)."""
        for request in requests:
            sender = request.get_response_sender()
            try:
                job = self._parse(request)
            except InvalidArgument as exc:
                _finish_with_error(sender, f"INVALID_ARGUMENT: {exc}", pb_utils.TritonError.INVALID_ARG)
                continue
            thread = threading.Thread(target=self._stream, args=(sender, job), name=f"tinylm-{job.request_id}")
            thread.daemon = True
            with self.lock:
                self.streams.add(thread)
            thread.start()
        return None

    def _stream(self, sender: Any, job: Job) -> None:
        sent = 0
        try:
            pb_utils.Logger.log_info(
                f"{self.name}: stream {job.request_id!r} start max_tokens={job.max_tokens} "
                f"start_index={job.start_index} seed={job.seed} temperature={job.temperature} "
                f"attempt={job.attempt}"
            )
            for index, text in self.lm.generate(job.prompt, job.max_tokens, job.temperature, job.seed, self.min_p):
                if index < job.start_index:
                    continue  # regenerated for the RNG and context, already delivered by an earlier attempt
                if job.token_delay_s > 0:
                    self.stopping.wait(job.token_delay_s)  # the emulated GPU time of this token
                if self.stopping.is_set():
                    _finish_with_error(sender, "UNAVAILABLE: Triton is shutting down", pb_utils.TritonError.UNAVAILABLE)
                    return
                if sender.is_cancelled():
                    pb_utils.Logger.log_info(f"{self.name}: stream {job.request_id!r} cancelled after {sent} tokens")
                    sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                    return
                if index == job.fail_at_token and job.attempt <= job.fail_attempts:
                    pb_utils.Logger.log_warn(
                        f"{self.name}: stream {job.request_id!r} injected OOM at token {index} (attempt {job.attempt})"
                    )
                    _finish_with_error(
                        sender,
                        f"GPU out of memory (injected at token {index}, attempt {job.attempt} of "
                        f"{job.fail_attempts} failing)",
                        pb_utils.TritonError.UNAVAILABLE,
                    )
                    return
                sender.send(_token_response(text, index))
                sent += 1
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            pb_utils.Logger.log_info(f"{self.name}: stream {job.request_id!r} done, {sent} tokens")
        except Exception as exc:
            pb_utils.Logger.log_error(f"{self.name}: stream {job.request_id!r} failed after {sent} tokens: {exc!r}")
            with contextlib.suppress(Exception):  # the client may be gone
                _finish_with_error(sender, f"INTERNAL: {exc}", None)
        finally:
            with self.lock:
                self.streams.discard(threading.current_thread())

    def finalize(self) -> None:
        self.stopping.set()
        with self.lock:
            streams = list(self.streams)
        for thread in streams:
            thread.join(timeout=2.0)


def _token_response(text: str, index: int) -> Any:
    return pb_utils.InferenceResponse(
        output_tensors=[
            pb_utils.Tensor("TEXT", np.array([text.encode("utf-8")], dtype=np.object_)),
            pb_utils.Tensor("INDEX", np.array([index], dtype=np.int32)),
        ]
    )


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
