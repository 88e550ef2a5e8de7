"""keywords: stream the top-k TF-IDF keywords of a text (Triton Python backend, decoupled).

The second stage of the two-model pipeline: it reads the first stage's generated text. Document
frequencies come from the shipped corpus with paragraphs as documents (`workers/tinylm/train.py`
writes `weights.npz` next to this file). numpy and the standard library only.

Inputs: TEXT (string), optional TOP_K (int32, default 5, 1..100). Outputs, one response per keyword,
best first: TEXT (the keyword, preceded by ", " except the first) and INDEX; then an empty response
flagged COMPLETE_FINAL. Score = (count in TEXT) x idf, ties broken by first appearance; stop words and
words shorter than the trained minimum never count. Bad input ends the stream with one error response
`INVALID_ARGUMENT: ...`. Test knobs as in tinylm (config `parameters`, overridden per request):
token_delay_ms (default 0), fail_at_token, fail_attempts, with the request parameter `attempt`.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

DEFAULT_TOP_K = 5
MAX_TOP_K = 100
KNOBS = ("token_delay_ms", "fail_at_token", "fail_attempts")


class InvalidArgument(ValueError):
    """Bad input: reported as `INVALID_ARGUMENT: <message>`, never retried."""


class KeywordIndex:
    def __init__(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as data:
            words = [str(w) for w in data["words"]]
            display = [str(w) for w in data["display"]]
            idf = [float(x) for x in data["idf"]]
            self.unknown_idf = float(data["unknown_idf"])
            self.stopwords = frozenset(str(w) for w in data["stopwords"])
            self.min_length = int(data["min_length"])
            self.word_re = re.compile(str(data["word_pattern"]))
            self.documents = int(data["documents"])
        self.idf = dict(zip(words, idf, strict=True))
        self.display = dict(zip(words, display, strict=True))

    def top(self, text: str, k: int) -> list[str]:
        counts: dict[str, int] = {}
        first_form: dict[str, str] = {}
        for word in self.word_re.findall(text):
            key = word.lower()
            if len(key) < self.min_length or key in self.stopwords:
                continue
            counts[key] = counts.get(key, 0) + 1
            first_form.setdefault(key, word)
        order = {key: i for i, key in enumerate(counts)}
        ranked = sorted(counts, key=lambda w: (-counts[w] * self.idf.get(w, self.unknown_idf), order[w]))
        return [self.display.get(w, first_form[w]) for w in ranked[:k]]


@dataclass(frozen=True)
class Job:
    request_id: str
    keywords: list[str]
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
        self.name = str(self.model_config.get("name", "keywords"))
        weights = Path(args["model_repository"]) / args["model_version"] / "weights.npz"
        if not weights.exists():  # model_repository is the model's directory; be lenient anyway
            weights = Path(__file__).resolve().parent / "weights.npz"
        started = time.monotonic()
        if not weights.exists():
            raise FileNotFoundError(
                f"{weights} is missing: train it with `python -m workers.tinylm.train` (jobstream's bootstrap does)"
            )
        self.index = KeywordIndex(weights)
        params = self.model_config.get("parameters", {})
        self.defaults: dict[str, str] = {
            key: str(params.get(key, {}).get("string_value", fallback))
            for key, fallback in (("token_delay_ms", "0"), ("fail_at_token", "-1"), ("fail_attempts", "0"))
        }
        self.stopping = threading.Event()
        self.sigterm_watch = _stop_on_sigterm(self.stopping, self.name)
        self.lock = threading.Lock()
        self.streams: set[threading.Thread] = set()
        pb_utils.Logger.log_info(
            f"{self.name}: loaded {weights} ({len(self.index.idf)} words, {self.index.documents} documents) "
            f"in {time.monotonic() - started:.2f}s; defaults {self.defaults}"
        )

    def _parse(self, request: Any) -> Job:
        raw = _scalar(request, "TEXT")
        if raw is None:
            raise InvalidArgument("TEXT is required")
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError:
            raise InvalidArgument("TEXT is not valid UTF-8") from None
        if not text.strip():
            raise InvalidArgument("TEXT is empty")
        value = _scalar(request, "TOP_K")
        top_k = DEFAULT_TOP_K if value is None else int(value)
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidArgument(f"TOP_K must be between 1 and {MAX_TOP_K}, got {top_k}")
        try:
            overrides = json.loads(request.parameters() or "{}")
        except ValueError:
            overrides = {}
        knobs: dict[str, Any] = {**self.defaults, **{k: v for k, v in overrides.items() if k in KNOBS}}
        return Job(
            request_id=str(request.request_id() or ""),
            keywords=self.index.top(text, top_k),
            token_delay_s=_float_knob("token_delay_ms", knobs["token_delay_ms"]) / 1000.0,
            fail_at_token=_int_knob("fail_at_token", knobs["fail_at_token"]),
            fail_attempts=_int_knob("fail_attempts", knobs["fail_attempts"]),
            attempt=_int_knob("attempt", overrides.get("attempt", 1)),
        )

    def execute(self, requests: list[Any]) -> None:
        """Start one streaming thread per request and return at once."""
        for request in requests:
            sender = request.get_response_sender()
            try:
                job = self._parse(request)
            except InvalidArgument as exc:
                _finish_with_error(sender, f"INVALID_ARGUMENT: {exc}", pb_utils.TritonError.INVALID_ARG)
                continue
            thread = threading.Thread(target=self._stream, args=(sender, job), name=f"keywords-{job.request_id}")
            thread.daemon = True
            with self.lock:
                self.streams.add(thread)
            thread.start()
        return None

    def _stream(self, sender: Any, job: Job) -> None:
        sent = 0
        try:
            for index, keyword in enumerate(job.keywords):
                if job.token_delay_s > 0:
                    self.stopping.wait(job.token_delay_s)
                if self.stopping.is_set():
                    _finish_with_error(sender, "UNAVAILABLE: Triton is shutting down", pb_utils.TritonError.UNAVAILABLE)
                    return
                if sender.is_cancelled():
                    pb_utils.Logger.log_info(f"{self.name}: stream {job.request_id!r} cancelled after {sent}")
                    sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                    return
                if index == job.fail_at_token and job.attempt <= job.fail_attempts:
                    _finish_with_error(
                        sender,
                        f"GPU out of memory (injected at token {index}, attempt {job.attempt} of "
                        f"{job.fail_attempts} failing)",
                        pb_utils.TritonError.UNAVAILABLE,
                    )
                    return
                sender.send(_token_response(("" if index == 0 else ", ") + keyword, index))
                sent += 1
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        except Exception as exc:
            pb_utils.Logger.log_error(f"{self.name}: stream {job.request_id!r} failed after {sent}: {exc!r}")
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
