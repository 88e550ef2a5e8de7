"""The test suite's own SSE client must parse text/event-stream the way a browser does, or the streaming tests
prove nothing: these pin the parser in tests/stack/sse_parser.py to the WHATWG event-stream rules."""

from __future__ import annotations

from tests.stack.sse_parser import SseEvent, SseParser


def feed_all(chunks: list[bytes]) -> tuple[list[SseEvent], SseParser]:
    parser = SseParser()
    events: list[SseEvent] = []
    for n, chunk in enumerate(chunks):
        events += parser.feed(chunk, float(n))
    return events, parser


def test_fields_and_every_line_ending() -> None:
    stream = b"id: 1\r\nevent: token\r\ndata: {}\r\n\r\nid: 2\nevent: e\ndata: x\n\nid: 3\revent: e\rdata: y\r\r"
    events, parser = feed_all([stream + b"id: 4\n"])
    assert [(e.id, e.event, e.data) for e in events] == [("1", "token", "{}"), ("2", "e", "x"), ("3", "e", "y")]
    assert parser.last_event_id == "4"  # an id line alone still moves the resume point


def test_multi_line_data_comments_and_defaults() -> None:
    events, parser = feed_all([b": ping - now\n\ndata: a\ndata:b\ndata\n\n:\n\ndata:  two spaces\n\n"])
    assert [(e.id, e.event, e.data) for e in events] == [(None, "message", "a\nb\n"), (None, "message", " two spaces")]
    assert [c.text for c in parser.comments] == ["ping - now", ""]


def test_chunks_split_anywhere() -> None:
    stream = '\ufeffid: 002.2.0000001\r\nevent: token\r\ndata: {"text": "café — ☕"}\r\n\r\n'.encode()
    whole, _ = feed_all([stream])
    assert len(whole) == 1
    for size in (1, 2, 3, 5, 7):
        pieces = [stream[i : i + size] for i in range(0, len(stream), size)]
        events, _ = feed_all(pieces)
        assert [(e.id, e.event, e.data) for e in events] == [(e.id, e.event, e.data) for e in whole]
    assert whole[0].json == {"text": "café — ☕"}
    assert whole[0].id == "002.2.0000001"


def test_received_time_is_when_the_event_was_complete() -> None:
    events, _ = feed_all([b"data: a\n", b"\n"])
    assert events[0].received == 1.0


def test_an_unfinished_event_is_not_dispatched() -> None:
    events, _ = feed_all([b"id: 1\ndata: partial\n"])
    assert events == []
