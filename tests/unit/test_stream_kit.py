"""workers/model_repository/stream_kit.py (with stream_contract.py and stream_lifetime.py beside it), the models'
side of the vLLM-backend contract, outside Triton: a stand-in for `triton_python_backend_utils` records what a
model would send. (The stack tests ask the real models in a real Triton.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jobstream.settings import PROJECT_ROOT

REPOSITORY = PROJECT_ROOT / "workers" / "model_repository"
# The kit and the modules it imports, each a top-level module as Triton's stub sees them.
KIT_MODULES = ("stream_kit", "stream_contract", "stream_lifetime")
FINAL = 1


class Tensor:
    def __init__(self, name: str, value: Any) -> None:
        self.name, self.value = name, value

    def as_numpy(self) -> Any:
        return self.value


class Response:
    def __init__(self, output_tensors: list[Tensor] | None = None, error: Any = None) -> None:
        self.outputs = {t.name: t.value.reshape(-1)[0] for t in output_tensors or []}
        self.error = error


class Error:
    INVALID_ARG, UNAVAILABLE = "INVALID_ARG", "UNAVAILABLE"

    def __init__(self, message: str, code: Any = None) -> None:
        self.message, self.code = message, code


def fake_backend() -> types.ModuleType:
    module = types.ModuleType("triton_python_backend_utils")
    module.Tensor = Tensor  # type: ignore[attr-defined]
    module.InferenceResponse = Response  # type: ignore[attr-defined]
    module.TritonError = Error  # type: ignore[attr-defined]
    module.TRITONSERVER_RESPONSE_COMPLETE_FINAL = FINAL  # type: ignore[attr-defined]
    module.Logger = types.SimpleNamespace(log_info=print, log_warn=print, log_error=print)  # type: ignore[attr-defined]
    module.get_input_tensor_by_name = lambda request, name: request.inputs.get(name)  # type: ignore[attr-defined]
    return module


@pytest.fixture(scope="module")
def kit() -> Iterator[types.ModuleType]:
    saved = sys.modules.get("triton_python_backend_utils")
    sys.modules["triton_python_backend_utils"] = fake_backend()
    # As the models do: no __pycache__ in the repository, which Triton would take for a model.
    sys.dont_write_bytecode, was = True, sys.dont_write_bytecode
    sys.path.insert(0, str(REPOSITORY))
    try:
        import stream_contract
        import stream_kit

        # What the models import from the kit is the contract's own (an InvalidArgument a model raises is the
        # one execute() catches).
        assert stream_kit.InvalidArgument is stream_contract.InvalidArgument
        assert stream_kit.Request is stream_contract.Request
        yield stream_kit
    finally:
        sys.path.remove(str(REPOSITORY))
        for name in KIT_MODULES:
            sys.modules.pop(name, None)
        sys.dont_write_bytecode = was
        if saved is None:
            sys.modules.pop("triton_python_backend_utils", None)
        else:
            sys.modules["triton_python_backend_utils"] = saved
    assert not (REPOSITORY / "__pycache__").exists()


class Request:
    def __init__(self, text: str, parameters: dict[str, Any] | None = None, **inputs: Any) -> None:
        self.inputs = {"text_input": Tensor("text_input", np.array([text.encode()], dtype=np.object_))}
        for name, value in inputs.items():
            if name == "sampling_parameters":
                value = json.dumps(value).encode()
            self.inputs[name] = Tensor(name, np.array([value], dtype=np.object_ if name.endswith("s") else bool))
        self._parameters = json.dumps(parameters or {})

    def parameters(self) -> str:
        return self._parameters

    def request_id(self) -> str:
        return "r1"


class Sender:
    def __init__(self) -> None:
        self.sent: list[tuple[Response | None, int]] = []

    def send(self, response: Response | None = None, flags: int = 0) -> None:
        self.sent.append((response, flags))

    def is_cancelled(self) -> bool:
        return False


def respond(kit: types.ModuleType, words: list[str], request: Request) -> list[tuple[dict[str, Any], int]]:
    """What a model that generates `words` sends for `request` (initialize() skipped: no Triton here): each
    response's outputs (or its error) and flags."""

    class Words(kit.StreamingModel):  # type: ignore[misc, name-defined]
        def load(self, args: dict[str, str], parameters: dict[str, str]) -> str:
            return "loaded"

        def generate(self, parsed: Any) -> Any:
            return kit.Generation(3, iter(words))

    model = Words()
    model.defaults = dict(model.knob_defaults)
    model.stopping, model.lock, model.streams = threading.Event(), threading.Lock(), set()
    parsed = model.parse(request)
    sender = Sender()
    model._respond(sender, parsed, model.generate(parsed))
    return [(_what(response), flags) for response, flags in sender.sent]


def _what(response: Response | None) -> dict[str, Any]:
    """A response's outputs, or {"error": (code, message)} for an error response: an injected OOM and a normal
    end must not look alike."""
    if response is None:
        return {}
    if response.error is not None:
        return {"error": (response.error.code, response.error.message)}
    return response.outputs


RETURNS: dict[str, Any] = {
    "return_finish_reason": True,
    "return_num_input_tokens": True,
    "return_num_output_tokens": True,
}


def test_streaming_sends_one_token_per_response_and_flags_the_last(kit: types.ModuleType) -> None:
    request = Request("x", stream=True, sampling_parameters={"max_tokens": "3"}, **RETURNS)
    sent = respond(kit, [" a", " b", " c", " d"], request)
    assert [(o["text_output"], o["finish_reason"], flags) for o, flags in sent] == [
        (b" a", b"None", 0),
        (b" b", b"None", 0),
        (b" c", b"length", FINAL),
    ]
    assert {o["num_input_tokens"] for o, _ in sent} == {3}
    assert [o["num_output_tokens"] for o, _ in sent] == [1, 1, 1]


def test_a_model_that_ends_early_stops_and_a_stop_sequence_is_cut_out(kit: types.ModuleType) -> None:
    ended = respond(kit, [" a", " b"], Request("x", stream=True, sampling_parameters={"max_tokens": 5}, **RETURNS))
    assert ended[-1][0]["finish_reason"] == b"stop"
    stopped = respond(
        kit,
        [" one", " two", " three", " four"],
        Request("x", stream=True, sampling_parameters={"max_tokens": 9, "stop": ["hre"]}, **RETURNS),
    )
    assert [(o["text_output"], flags) for o, flags in stopped] == [(b" one", 0), (b" two", 0), (b" t", FINAL)]
    assert stopped[-1][0]["finish_reason"] == b"stop"


def test_without_stream_one_response_carries_the_input_and_the_output(kit: types.ModuleType) -> None:
    sent = respond(kit, [" a", " b"], Request("Say", sampling_parameters={"max_tokens": 2}))
    assert sent == [({"text_output": b"Say a b"}, FINAL)]


def test_an_injected_failure_comes_after_the_tokens_before_it(kit: types.ModuleType) -> None:
    request = Request("x", {"fail_at_token": 2, "fail_attempts": 1}, stream=True, sampling_parameters={})
    sent = respond(kit, [" a", " b", " c"], request)
    assert [o.get("text_output") for o, _ in sent[:-1]] == [b" a", b" b"]
    outputs, flags = sent[-1]
    assert flags == FINAL
    code, message = outputs["error"]
    assert code == Error.UNAVAILABLE  # retryable, as vLLM's out-of-memory is
    assert "out of memory (injected at token 2" in message


def test_a_normal_end_is_no_error(kit: types.ModuleType) -> None:
    sent = respond(kit, [" a", " b"], Request("x", stream=True, sampling_parameters={"max_tokens": 2}, **RETURNS))
    assert not [outputs for outputs, _ in sent if "error" in outputs]


@pytest.mark.parametrize(
    ("sampling", "message"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": "hot"}, "numbers"),
        ({"top_p": 0}, "top_p"),
        ({"stop": [""]}, "stop"),
    ],
)
def test_bad_sampling_parameters_are_invalid_arguments(
    kit: types.ModuleType, sampling: dict[str, Any], message: str
) -> None:
    with pytest.raises(kit.InvalidArgument, match=message):
        kit.parse_sampling(json.dumps(sampling))
    # Numbers as strings, as vllm_backend's sample client sends them.
    assert kit.parse_sampling(json.dumps({"temperature": "0.1", "top_p": "0.95", "max_tokens": "100"})) == (
        kit.Sampling(max_tokens=100, temperature=0.1, top_p=0.95)
    )


def test_a_stub_whose_server_died_removes_its_region_and_exits(tmp_path: Path) -> None:
    """The stub's parent (Triton) is SIGKILLed: the orphan must not live on holding its shared memory."""
    region = Path("/dev/shm") / f"triton_python_backend_shm_region_test-{uuid.uuid4().hex}"
    region.write_bytes(b"\0" * 16)
    stub = textwrap.dedent(
        f"""
        import sys, time, types
        sys.dont_write_bytecode = True
        sys.modules["triton_python_backend_utils"] = types.ModuleType("triton_python_backend_utils")
        sys.path.insert(0, {str(REPOSITORY)!r})
        import stream_kit  # type: ignore[import-not-found]
        import stream_lifetime  # type: ignore[import-not-found]
        assert stream_kit._exit_when_orphaned is stream_lifetime._exit_when_orphaned
        stream_lifetime.PARENT_CHECK_S = 0.05
        stream_lifetime._exit_when_orphaned("fake-stub")
        print("watching", flush=True)
        time.sleep(30)
        """
    )
    # The "server" starts the stub (whose command line names its region, as Triton's does) and dies.
    server = textwrap.dedent(
        f"""
        import subprocess, sys
        stub = subprocess.Popen([sys.executable, "-c", {stub!r}, {region.name!r}], stdout=subprocess.PIPE)
        assert stub.stdout.readline() == b"watching\\n"
        print(stub.pid, flush=True)
        """
    )
    try:
        done = subprocess.run([sys.executable, "-c", server], capture_output=True, text=True, check=True)
        pid = int(done.stdout.split()[0])
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower():
            assert time.monotonic() < deadline, "the orphaned stub lives on"
            time.sleep(0.05)
        assert not region.exists()
    finally:
        region.unlink(missing_ok=True)
