"""Events as Server-Sent Events frames: the bridge's wire encoding (WatchJob sends the protobuf instead)."""

from __future__ import annotations

import re

from jobstream.delivery import Delivery
from jobstream.event_log import event_json
from jobstream.v1.event_pb2 import JobEvent

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def sse_frame(event: JobEvent) -> bytes:
    """CRLF line ends, as sse-starlette (the bridge's earlier writer) used; EventSource accepts any of CRLF, CR
    and LF. json.dumps escapes control characters, so the data is a single line; the split is a guard."""
    name = _LINE_BREAK.sub("", event.type)
    data = "".join(f"data: {line}\r\n" for line in _LINE_BREAK.split(event_json(event)))
    return f"id: {event.id}\r\nevent: {name}\r\n{data}\r\n".encode()


def frame_of(delivery: Delivery) -> bytes:
    """The delivery's frame, rendered by the first of its watchers and shared by the rest."""
    if delivery.encoded is None:
        delivery.encoded = sse_frame(delivery.event)
    return delivery.encoded


def frames_of(batch: list[Delivery]) -> bytes:
    return b"".join([frame_of(delivery) for delivery in batch])
