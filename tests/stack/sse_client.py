"""A real Server-Sent Events client (httpx streaming + the parser of sse_parser): reading a job's stream to its
end once, or following it as a browser's EventSource does, reconnecting with Last-Event-ID."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import httpx

from tests.stack.sse_parser import SseComment, SseEvent, SseParser


class SseConnection:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.parser = SseParser()

    @property
    def comments(self) -> list[SseComment]:
        return self.parser.comments

    async def events(self) -> AsyncIterator[SseEvent]:
        """Every event until the server ends the stream (an incomplete trailing event is dropped)."""
        async for chunk in self.response.aiter_raw():
            for event in self.parser.feed(chunk, time.time()):
                yield event

    async def collect(self) -> list[SseEvent]:
        """Every event until the server closes the stream (which it must do after a terminal event)."""
        return [event async for event in self.events()]


def sse_client(read_timeout_s: float = 60.0, ca_file: Path | None = None) -> httpx.AsyncClient:
    """A client for long-lived streams: its read timeout is well above the bridge's keep-alive interval.
    `ca_file`: the CA of a TLS front (the cluster's edge)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, read=read_timeout_s),
        limits=httpx.Limits(max_connections=None),
        verify=ssl.create_default_context(cafile=str(ca_file)) if ca_file else True,
    )


@contextlib.asynccontextmanager
async def sse_connect(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[SseConnection]:
    """An open SSE request; leaving the block drops the connection, as a client going away does."""
    request_headers = {"accept": "text/event-stream", "cache-control": "no-cache", **(headers or {})}
    async with client.stream("GET", url, headers=request_headers) as response:
        yield SseConnection(response)


async def read_stream(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None, timeout_s: float = 120.0
) -> list[SseEvent]:
    """Connect, require a 200 `text/event-stream`, and read the stream to its end."""
    async with asyncio.timeout(timeout_s), sse_connect(client, url, headers) as connection:
        if connection.response.status_code != 200:
            body = (await connection.response.aread()).decode(errors="replace")
            raise AssertionError(f"SSE {url}: HTTP {connection.response.status_code}: {body}")
        assert connection.response.headers["content-type"].startswith("text/event-stream")
        return await connection.collect()


def events_url(bridge_url: str, job_id: str, token: str, after: str = "") -> str:
    url = f"{bridge_url}/v1/jobs/{job_id}/events?token={token}"
    return f"{url}&after={after}" if after else url


# -- an EventSource-like client: reconnects with Last-Event-ID until the story ends ------------------------

TERMINAL_EVENTS = frozenset({"job.completed", "job.failed", "job.cancelled"})


@dataclass
class Followed:
    events: list[SseEvent]
    connections: int  # 1 when the stream never broke
    statuses: tuple[int, ...] = ()  # each connection's HTTP status, in order
    received: list[float] = dataclass_field(default_factory=list)  # time.monotonic() of each event

    @property
    def longest_pause_s(self) -> float:
        """The longest wait between two events (or before the first): how long a fault stalled this client."""
        return max((b - a for a, b in itertools.pairwise(self.received)), default=0.0)


async def follow_reconnecting(
    client: httpx.AsyncClient,
    url: str,
    on_event: Any = None,
    timeout_s: float = 240.0,
    retry_s: float = 0.5,
) -> Followed:
    """Read a job's stream to its terminal event as a browser's EventSource does: when the connection drops
    (or the bridge is away, or answers 502/503/504) wait `retry_s` and reconnect with `Last-Event-ID`.

    Events are returned as received, never deduplicated here: exactly-once is the server's job.
    `on_event(event)` (sync or async) runs after each event is recorded.
    """
    parser_last = ""
    events: list[SseEvent] = []
    received: list[float] = []
    connections = 0
    statuses: list[int] = []
    async with asyncio.timeout(timeout_s):
        while True:
            headers = {"last-event-id": parser_last} if parser_last else {}
            try:
                async with sse_connect(client, url, headers) as connection:
                    connections += 1
                    status = connection.response.status_code
                    statuses.append(status)
                    if status in (502, 503, 504):
                        await connection.response.aread()
                    elif status != 200:
                        body = (await connection.response.aread()).decode(errors="replace")
                        raise AssertionError(f"SSE {url}: HTTP {status}: {body}")
                    else:
                        async for event in connection.events():
                            events.append(event)
                            received.append(time.monotonic())
                            parser_last = connection.parser.last_event_id or parser_last
                            if on_event is not None:
                                result = on_event(event)
                                if asyncio.iscoroutine(result):
                                    await result
                            if event.event in TERMINAL_EVENTS:
                                return Followed(events, connections, tuple(statuses), received)
            except httpx.TransportError:
                pass  # refused, reset or cut off mid-body: the bridge went away
            await asyncio.sleep(retry_s)
