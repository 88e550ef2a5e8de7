"""What jobstream's Python-backend models share: the request and response contract of Triton's vLLM backend,
decoupled streaming on a thread per request, the fault-drill knobs, and a clean end when the server goes.

Triton loads every directory of the model repository as a model and ignores plain files, so this module
sits at the repository's root with its siblings; each model puts that directory on `sys.path`, imports
what it needs from here and subclasses `StreamingModel`.

- `stream_contract.py`: the contract (requests and responses, described there) and the fault-drill knobs:
  `Request`, `Sampling`, `Drills`, `InvalidArgument` and the reading of a Triton request; re-exported here.
- `stream_lifetime.py`: the stub process's watchers, for SIGTERM and for a server that died.
- this module: `StreamingModel`, the Triton entry points, which stream a model's `Generation` as responses
  (one per token when streaming, the last flagged COMPLETE_FINAL; else one with the whole output), end a
  stream at a stop string or `max_tokens`, and apply the drills (emulated GPU time, injected failures).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import triton_python_backend_utils as pb_utils
from stream_contract import Drills, InvalidArgument, Request, Sampling, parse_request, parse_sampling
from stream_lifetime import _exit_when_orphaned, _stop_on_sigterm

__all__ = [
    "Drills",
    "Generation",
    "InvalidArgument",
    "Request",
    "Sampling",
    "StreamingModel",
    "parse_sampling",
]


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
        return parse_request(triton_request, self.defaults)

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


def _finish_with_error(sender: Any, message: str, code: Any | None) -> None:
    error = pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)
    sender.send(pb_utils.InferenceResponse(error=error), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
