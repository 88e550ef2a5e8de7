"""The SSE bridge app's pacing of a stream (no servers): keep-alive comments on an idle stream and on one held
while Temporal is away, a ping never written at once with a batch, the watcher released when the client goes
away, and the spread of the reconnect waits it asks of clients.

The event log and Temporal are stand-ins (tests/unit/sse_bridge_kit.py); the real ones are exercised by
tests/stack/test_streaming*.py.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import Message

from jobstream.settings import Settings
from sse_bridge.app import RETRY_MS, RETRY_SPREAD, retry_hint
from sse_bridge.sse_encoding import sse_frame
from sse_bridge.streams import PING
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


async def test_an_idle_stream_gets_keep_alive_comments_and_the_watcher_is_released_on_disconnect() -> None:
    stream = SilentStream()
    app = make_app(stream, Directory(), keepalive_s=1)
    token = tokens().issue(JOB, TENANT, KID)
    sent: asyncio.Queue[Message] = asyncio.Queue()
    gone = asyncio.Event()
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async with lifespan(app):
        started = time.monotonic()
        request = asyncio.create_task(app(http_scope(f"/v1/jobs/{JOB}/events", f"token={token}"), receive, sent.put))
        start = await asyncio.wait_for(sent.get(), 5)
        assert start["type"] == "http.response.start"
        assert start["status"] == 200
        headers = {k.decode(): v.decode() for k, v in start["headers"]}
        assert headers["content-type"].startswith("text/event-stream")
        # First the reconnection delay for EventSource, then only keep-alives.
        hint = await asyncio.wait_for(sent.get(), 5)
        assert retry_ms(hint["body"]) in range(RETRY_MS, RETRY_MS * RETRY_SPREAD + 1)
        comments: list[float] = []
        async with asyncio.timeout(10):
            while len(comments) < 2:
                message = await sent.get()
                assert message["type"] == "http.response.body"
                assert message.get("more_body") is True
                body: bytes = message["body"]
                # Only comment lines: a keep-alive must never look like an event to a client.
                lines = [line for line in body.decode().splitlines() if line]
                assert lines, body
                assert all(line.startswith(":") for line in lines), body
                comments.append(time.monotonic() - started)
        assert stream.watching.is_set()
        assert comments[0] >= 0.8, comments  # paced by the interval, not sent in a burst
        gone.set()  # the client goes away: the bridge stops its watch of the event log
        await asyncio.wait_for(request, 5)
        await asyncio.wait_for(stream.released.wait(), 5)


async def test_default_keep_alive_interval_comes_from_settings() -> None:
    assert Settings().sse_keepalive_s == 15
    assert Settings(sse_keepalive_s=2).sse_keepalive_s == 2


def test_reconnect_waits_are_spread() -> None:
    waits = {retry_ms(retry_hint()) for _ in range(200)}
    assert min(waits) >= RETRY_MS
    assert max(waits) <= RETRY_MS * RETRY_SPREAD
    assert len(waits) > 50  # not one value for everyone


async def test_a_stream_held_while_temporal_is_away_gets_keep_alives() -> None:
    stream = ScriptedStream([(0, tokens_of(1))])
    app = make_app(stream, Directory(unavailable_for=3), keepalive_s=1)  # owner known after ~3 s
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async with lifespan(app):
        await serve(app, send)
    bodies = [message["body"] for message in sent[1:]]
    assert bodies[0].startswith(b"retry: ")
    assert PING in bodies[1:-2]
    assert bodies[-2:] == [sse_frame(tokens_of(1)[0]), b""]


async def test_a_ping_and_a_batch_never_share_the_connection_at_once() -> None:
    # The first ping (at ~1 s) is slow to go out; the batch is ready while it is still being written.
    stream = ScriptedStream([(1.3, tokens_of(2))])
    app = make_app(stream, Directory(), keepalive_s=1)
    in_flight, most = 0, 0
    sent: list[bytes] = []

    async def send(message: Message) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if message.get("body") == PING:
            await asyncio.sleep(0.5)
        sent.append(message.get("body", b""))
        in_flight -= 1

    async with lifespan(app):
        await serve(app, send)
    assert most == 1
    assert sent[2] == PING
    assert sent[3] == b"".join(sse_frame(event) for event in tokens_of(2))
