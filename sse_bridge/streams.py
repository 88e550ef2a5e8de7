"""Server-Sent Events responses that cost little per event.

A stream's frames come already rendered (once per Kafka record, shared by every watcher of the job; see
`jobstream.event_hub.Delivery`), and all that a connection has pending goes out in one ASGI send. Nothing
runs per event besides that send: a connection's keep-alives and its send timeout are the business of one
timer for the whole process (`Streams`), and its disconnect of one task that waits on `receive()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from sse_bridge.metrics import OPEN_STREAMS, SLOW_CLIENTS_CUT

log = logging.getLogger(__name__)

PING = b": ping\r\n\r\n"
# The timer's period at most: a keep-alive is late by up to this much, a stuck client cut this much late.
TICK_S = 1.0
# How long a stream ended from outside may take to tell its client so.
END_WRITE_S = 1.0


class _Connection:
    """One open stream, as the timer sees it: when it last wrote, and whether a write is in flight."""

    __slots__ = ("_pinging", "idle_since", "send", "sending_since", "started", "streaming")

    def __init__(self, send: Send) -> None:
        self.send = send
        # Never two sends in flight on one connection: the timer pings only a connection that is not
        # sending, and the stream's next write waits for that ping.
        self._pinging: asyncio.Task[None] | None = None
        self.streaming: asyncio.Task[None] | None = None
        self.idle_since = asyncio.get_running_loop().time()
        self.sending_since: float | None = None
        self.started = False

    async def write(self, body: bytes, more_body: bool = True) -> None:
        while self._pinging is not None:
            await self._pinging
        await self._send({"type": "http.response.body", "body": body, "more_body": more_body})

    async def start(self, headers: list[tuple[bytes, bytes]]) -> None:
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        self.started = True

    async def _send(self, message: Message) -> None:
        loop = asyncio.get_running_loop()
        self.sending_since = loop.time()
        try:
            await self.send(message)
        finally:
            self.sending_since = None
            self.idle_since = loop.time()

    @property
    def can_ping(self) -> bool:
        return self.sending_since is None and self._pinging is None

    def ping(self) -> None:
        # A task of its own, so that a client slow to take one does not hold up the timer (or the others).
        self._pinging = asyncio.create_task(self._ping())

    async def _ping(self) -> None:
        try:
            # A write that fails means the connection is gone, which its disconnect (or the stream's own
            # next write) reports; the ping has nothing to add.
            with contextlib.suppress(Exception):
                await self._send({"type": "http.response.body", "body": PING, "more_body": True})
        finally:
            self._pinging = None

    def cut(self) -> None:
        for task in (self.streaming, self._pinging):
            if task is not None:
                task.cancel()


class Streams:
    """The open streams and their one timer: a `: ping` comment on each stream that wrote nothing for
    `keepalive_s` (proxies drop silent connections), and the end of one whose write has been blocked for
    `send_timeout_s` (a client that stopped reading must not hold a stream, and its watch, forever)."""

    def __init__(self, keepalive_s: float, send_timeout_s: float | None = None) -> None:
        self.keepalive_s = keepalive_s
        self.send_timeout_s = send_timeout_s
        limits = [TICK_S, keepalive_s / 4] + ([send_timeout_s / 4] if send_timeout_s is not None else [])
        self.tick_s = max(min(limits), 0.01)
        self._open: set[_Connection] = set()
        self._timer: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._open)

    def add(self, connection: _Connection) -> None:
        self._open.add(connection)
        OPEN_STREAMS.set(len(self._open))
        if self._timer is None:
            self._timer = asyncio.create_task(self._tick())

    def discard(self, connection: _Connection) -> None:
        self._open.discard(connection)
        OPEN_STREAMS.set(len(self._open))
        if not self._open and self._timer is not None:
            # Runs only while there are streams, so an idle bridge (or a test's event loop) has no timer.
            self._timer.cancel()
            self._timer = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.tick_s)
            now = loop.time()
            for connection in list(self._open):
                sending_since = connection.sending_since
                if sending_since is None:
                    if connection.can_ping and now - connection.idle_since >= self.keepalive_s:
                        connection.ping()
                elif self.send_timeout_s is not None and now - sending_since > self.send_timeout_s:
                    log.warning("an SSE client took no write for %ss: cut off", self.send_timeout_s)
                    SLOW_CLIENTS_CUT.labels("send_timeout").inc()
                    connection.cut()


class EventSourceResponse(Response):
    """`frames` as a text/event-stream, each chunk in one send, until it ends or the client goes away."""

    media_type = "text/event-stream"

    def __init__(
        self,
        frames: AsyncGenerator[bytes, None],
        streams: Streams,
        on_close: Callable[[], None] | None = None,
        until: asyncio.Event | None = None,
    ) -> None:
        self.frames = frames
        self.streams = streams
        self.on_close = on_close
        self.until = until  # set from outside (its key revoked): the stream ends there
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-store", "Connection": "keep-alive", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = _Connection(send)
        self.streams.add(connection)
        streaming = connection.streaming = asyncio.create_task(self._stream(connection))
        listening = asyncio.create_task(_until_disconnect(receive))
        ending = asyncio.create_task(self.until.wait() if self.until is not None else asyncio.Event().wait())
        try:
            await asyncio.wait((streaming, listening, ending), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.streams.discard(connection)
            connection.cut()
            listening.cancel()
            ending.cancel()
            await asyncio.wait((streaming, listening, ending))
            if ending.done() and not ending.cancelled() and connection.started:
                # Ended from outside: close the body properly, so the client sees an end, not a broken
                # connection (an EventSource then reconnects and is told why).
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.write(b"", more_body=False), END_WRITE_S)
            if self.on_close is not None:
                self.on_close()
        for task in (streaming, listening):
            if not task.cancelled():
                task.result()  # the stream's own error (or the server's), if it had one
        # Cut off (or gone away) without the response's end: the server closes the connection.

    async def _stream(self, connection: _Connection) -> None:
        # aclosing: a stream cut off mid-write leaves its watch of the event log now, not when collected.
        async with contextlib.aclosing(self.frames) as frames:
            await connection.start(self.raw_headers)
            async for chunk in frames:
                await connection.write(chunk)
            await connection.write(b"", more_body=False)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
