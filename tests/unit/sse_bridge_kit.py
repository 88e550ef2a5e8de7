"""Stand-ins and drivers for the SSE bridge app's tests (no servers): event hubs that stay silent or hand out
scripted batches, a job directory that can fail, the app built over them, and the ASGI plumbing a server would
provide (the lifespan, a request's scope, one stream served to its end).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, cast

from starlette.applications import Starlette
from starlette.types import Message
from temporalio.service import RPCError, RPCStatusCode

from jobstream import cursors
from jobstream.auth import key_id
from jobstream.delivery import Delivery
from jobstream.event_hub import EventHub
from jobstream.job_directory import JobDirectory
from jobstream.keys_store import KeysFile, digest
from jobstream.settings import Settings
from jobstream.stream_tokens import StreamTokens
from jobstream.v1.event_pb2 import JobEvent
from sse_bridge.admission import Admission
from sse_bridge.app import Bridge, create_app

JOB = "job_" + "a" * 26
OTHER_JOB = "job_" + "b" * 26
TENANT = "acme"
KEY = digest("the test tenant's API key")
KID = key_id(KEY)


UNLIMITED = Settings(tenant_max_streams=0, stream_token_max_streams=0)


class SilentStream:
    """An EventHub whose job never has anything new to say (a job waiting in a queue)."""

    def __init__(self) -> None:
        self.watching = asyncio.Event()
        self.released = asyncio.Event()

    async def watch_batches(
        self, job_id: str, after: str = "", owner: str = ""
    ) -> AsyncGenerator[list[Delivery], None]:
        self.watching.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.released.set()
        yield []  # pragma: no cover - never reached; makes this an async generator


class Directory:
    def __init__(self, fail: bool = False, unavailable_for: int = 0) -> None:
        self.fail = fail
        self.unavailable_for = unavailable_for
        self.store = None  # these streams carry no result URL to sign again

    async def tenant(self, job_id: str) -> str | None:
        if self.fail:
            raise ConnectionError("Temporal is down")
        if self.unavailable_for > 0:
            self.unavailable_for -= 1
            raise RPCError("Temporal is restarting", RPCStatusCode.UNAVAILABLE, b"")
        return TENANT if job_id in (JOB, OTHER_JOB) else None


def tokens() -> StreamTokens:
    return StreamTokens(Settings(stream_token_secret="unit-test-secret-" + "x" * 32))


def make_app(stream: object, directory: Directory, keepalive_s: int, send_timeout_s: float | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def open_bridge() -> AsyncIterator[Bridge]:
        yield Bridge(
            cast(EventHub, stream),
            cast(JobDirectory, directory),
            tokens(),
            keepalive_s,
            send_timeout_s=send_timeout_s,
            admission=Admission(lambda: KeysFile({KEY: TENANT}, {}), UNLIMITED),
        )

    return create_app(open_bridge)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Run the app's ASGI lifespan, as a server would around its requests."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await task


def http_scope(path: str, query: str = "", headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("bridge.test", 80),
    }


def retry_ms(body: bytes) -> int:
    """The reconnect wait a `retry:` block asks for."""
    field, _, value = body.decode().removesuffix("\r\n\r\n").partition(": ")
    assert field == "retry"
    return int(value)


class ScriptedStream:
    """An EventHub that hands out the given batches, each after its delay, then ends."""

    def __init__(self, script: Sequence[tuple[float, list[JobEvent]]]) -> None:
        self.script = script
        self.released = asyncio.Event()

    async def watch_batches(
        self, job_id: str, after: str = "", owner: str = ""
    ) -> AsyncGenerator[list[Delivery], None]:
        try:
            for delay, events in self.script:
                await asyncio.sleep(delay)
                yield [Delivery(event) for event in events]
        finally:
            self.released.set()


def tokens_of(count: int) -> list[JobEvent]:
    return [JobEvent(id=cursors.token(0, i), job_id=JOB, type="token") for i in range(count)]


async def serve(app: Starlette, send: Any) -> None:
    """One stream request to the end, with a client that never goes away."""

    async def receive() -> Message:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    token = tokens().issue(JOB, TENANT, KID)
    await asyncio.wait_for(app(http_scope(f"/v1/jobs/{JOB}/events", f"token={token}"), receive, send), 10)
