"""This surface's own SSE framing, which both SDKs decode: `event:` equal to the data's `type`, one `data:` line,
no `id:` line (once an id has been seen, openai-python turns a keep-alive into an empty event and fails on it).
Keep-alives stay the bridge's `: ping` comments, which without ids no SDK turns into an event."""

from __future__ import annotations

import json
from typing import Any

DONE = b"data: [DONE]\n\n"


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def typed_frame(event: dict[str, Any]) -> bytes:
    """A Responses event."""
    return f"event: {event['type']}\ndata: {_json(event)}\n\n".encode()


def data_frame(data: Any) -> bytes:
    """A Chat Completions chunk (that API names no events)."""
    return f"data: {_json(data)}\n\n".encode()
