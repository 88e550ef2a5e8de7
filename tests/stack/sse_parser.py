"""A small incremental text/event-stream parser: the Server-Sent Events a real client would dispatch, and
the comments (keep-alives) between them. Pure; tests/unit/test_sse_parser.py pins it to the WHATWG rules."""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

# The parser follows the WHATWG "event stream interpretation" rules: CRLF / CR / LF each end a line, a
# `field: value` line drops one optional space after the colon, `data` lines join with "\n", `id` sets the
# last event id, lines starting with ':' are comments (the bridge's keep-alives), a blank line dispatches.

_SSE_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event; `id` is the event's own `id:` field (None if its block had none)."""

    id: str | None
    event: str
    data: str
    received: float  # time.time() when the chunk holding its dispatching blank line arrived

    @property
    def json(self) -> dict[str, Any]:
        value = json.loads(self.data)
        assert isinstance(value, dict), self.data
        return value


@dataclass(frozen=True)
class SseComment:
    text: str
    received: float


@dataclass
class SseParser:
    """Incremental text/event-stream parser: `feed` bytes as they arrive, get back the dispatched events."""

    comments: list[SseComment] = dataclass_field(default_factory=list)
    last_event_id: str = ""
    _decoder: codecs.IncrementalDecoder = dataclass_field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")()
    )
    _buffer: str = ""
    _started: bool = False
    _data: list[str] = dataclass_field(default_factory=list)
    _event: str = ""
    _id: str | None = None

    def feed(self, chunk: bytes, now: float) -> list[SseEvent]:
        text = self._decoder.decode(chunk)  # incremental: a character split across chunks is kept whole
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")  # one leading BOM is allowed and ignored
        self._buffer += text
        events: list[SseEvent] = []
        while (match := _SSE_LINE_END.search(self._buffer)) is not None:
            if match.group() == "\r" and match.end() == len(self._buffer):
                break  # maybe the first half of a CRLF split across chunks: wait for the next chunk
            line, self._buffer = self._buffer[: match.start()], self._buffer[match.end() :]
            event = self._line(line, now)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str, now: float) -> SseEvent | None:
        if line == "":
            return self._dispatch(now)
        if line.startswith(":"):
            self.comments.append(SseComment(line[1:].removeprefix(" "), now))
            return None
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
            self.last_event_id = value
        # `retry` and unknown fields are ignored, as a browser does.
        return None

    def _dispatch(self, now: float) -> SseEvent | None:
        data, event_type, event_id = self._data, self._event or "message", self._id
        self._data, self._event, self._id = [], "", None
        if not data:
            return None  # a block without data dispatches nothing
        return SseEvent(id=event_id, event=event_type, data="\n".join(data), received=now)
