"""How the SSE bridge app writes a stream (no servers): one write per batch of events, under the stream's
headers, and a client that stops reading cut off by the send timeout, its watcher released.

The event log and Temporal are stand-ins (tests/unit/sse_bridge_kit.py); the real ones are exercised by
tests/stack/test_streaming*.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from starlette.types import Message

from sse_bridge.app import RETRY_MS, RETRY_SPREAD, Bridge
from sse_bridge.sse_encoding import sse_frame
from tests.unit.sse_bridge_kit import (
    JOB,
    KID,
    TENANT,
    Directory,
    ScriptedStream,
    SilentStream,
    http_scope,
    lifespan,
    make_app,
    retry_ms,
    serve,
    tokens,
    tokens_of,
)


async def test_a_client_that_stops_reading_is_cut_off_and_its_watcher_released() -> None:
    stream = SilentStream()
    app = make_app(stream, Directory(), keepalive_s=1, send_timeout_s=0.5)
    token = tokens().issue(JOB, TENANT, KID)
    written: list[Message] = []
    stuck = asyncio.Event()

    async def receive() -> Message:
        if not written:
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # never disconnects: it just stops reading
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        written.append(message)
        if len(written) > 2:  # the headers and the retry hint got through; then its window is full
            stuck.set()
            await asyncio.Event().wait()

    async with lifespan(app):
        request = asyncio.create_task(app(http_scope(f"/v1/jobs/{JOB}/events", f"token={token}"), receive, send))
        await asyncio.wait_for(stuck.wait(), 5)
        started = time.monotonic()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(request, 5)  # the send timeout ends the response ...
        assert time.monotonic() - started < 3
        await asyncio.wait_for(stream.released.wait(), 5)  # ... and the watch of the event log with it


async def test_a_batch_of_events_goes_out_in_one_write_with_the_old_headers() -> None:
    events = tokens_of(3)
    stream = ScriptedStream([(0, events[:1]), (0, events[1:])])
    app = make_app(stream, Directory(), keepalive_s=15)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async with lifespan(app):
        await serve(app, send)
        bridge: Bridge = app.state.bridge
        assert len(bridge.streams) == 0
        assert bridge.streams._timer is None  # no streams, no timer
    start, hint, *bodies, end = sent
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert headers["content-type"] == "text/event-stream; charset=utf-8"
    assert headers["cache-control"] == "no-store"
    assert headers["x-accel-buffering"] == "no"
    assert "content-length" not in headers
    assert retry_ms(hint["body"]) in range(RETRY_MS, RETRY_MS * RETRY_SPREAD + 1)
    frames = [sse_frame(event) for event in events]
    assert [body["body"] for body in bodies] == [frames[0], frames[1] + frames[2]]
    assert all(body["more_body"] for body in [hint, *bodies])
    assert end == {"type": "http.response.body", "body": b"", "more_body": False}
    assert stream.released.is_set()
