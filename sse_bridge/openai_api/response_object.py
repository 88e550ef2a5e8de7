"""The Response object and its parts, as the SDKs parse them strictly (`_strict_response_validation=True`):
every field they require is present, and nothing in it depends on who asks or when, only on the job."""

from __future__ import annotations

from typing import Any

from jobstream.v1.job_pb2 import Usage

STATUS_OF_FINISH = {"length": "incomplete"}  # a completed job cut at its token budget is an incomplete response


def usage(used: Usage | None) -> dict[str, Any] | None:
    if used is None:
        return None
    return {
        "input_tokens": used.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": used.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": used.prompt_tokens + used.output_tokens,
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    """The response's one output item; `text` None: no content part yet."""
    content = [] if text is None else [text_part(text)]
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def response(
    response_id: str,
    created_at: int,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    used: Usage | None = None,
    error: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": None,
        "metadata": metadata or {},
        "model": model,
        "output": output,
        "parallel_tool_calls": False,
        "previous_response_id": None,
        "store": True,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "none",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "usage": usage(used),
    }


def status_of_end(finish_reason: str) -> str:
    return STATUS_OF_FINISH.get(finish_reason, "completed")
