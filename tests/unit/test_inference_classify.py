"""workers/pipeline/activities/model/triton_vllm.py classify(): Triton errors onto the retry policy's vocabulary."""

from __future__ import annotations

import pytest

from jobstream.pipelines import load_pipelines
from workers.pipeline.activities.model.triton_vllm import GPU_OUT_OF_MEMORY, TRITON_UNAVAILABLE, classify
from workers.pipeline.activities.text import INVALID_INPUT


@pytest.mark.parametrize(
    "message",
    ["INVALID_ARGUMENT: MAX_TOKENS must be between 1 and 4096", "[StatusCode.INVALID_ARGUMENT] unexpected input 'X'"],
)
def test_invalid_argument_is_not_retried(message: str) -> None:
    error = classify(message)
    assert error.type == INVALID_INPUT
    assert error.non_retryable
    assert error.message == message


@pytest.mark.parametrize(
    "message",
    ["GPU out of memory at token 5 (attempt 1)", "CUDA OUT OF MEMORY", "failed to allocate: Out Of Memory"],
)
def test_out_of_memory_is_retryable(message: str) -> None:
    error = classify(message)
    assert error.type == GPU_OUT_OF_MEMORY
    assert not error.non_retryable


@pytest.mark.parametrize(
    "message",
    [
        "[StatusCode.UNAVAILABLE] failed to connect to all addresses",
        "Request for unknown model: 'tinylm'",
        "",
        "memory",
    ],
)
def test_anything_else_is_triton_unavailable(message: str) -> None:
    error = classify(message)
    assert error.type == TRITON_UNAVAILABLE
    assert not error.non_retryable


def test_invalid_argument_wins_over_out_of_memory() -> None:
    assert classify("INVALID_ARGUMENT: asked for more memory than out of memory allows").type == INVALID_INPUT


def test_the_pipelines_agree_on_the_names() -> None:
    """The retry policy refuses retries by these names; a rename on one side would silently retry bad input."""
    for name in load_pipelines().names():
        for stage in load_pipelines().resolve(name):
            if stage.kind == "model":
                assert INVALID_INPUT in stage.retry.non_retryable, (name, stage.name)
                assert GPU_OUT_OF_MEMORY not in stage.retry.non_retryable
