"""The SSE bridge app on its own (no servers): keep-alive comments on an idle stream, release of the watcher
when the client goes away or stops reading, one write per batch of events, and the JSON refusals. The event
log and Temporal are stand-ins here; the real ones are exercised by tests/stack/test_streaming*.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, cast

import httpx
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
from sse_bridge.app import RETRY_MS, RETRY_SPREAD, Bridge, create_app, retry_hint
from sse_bridge.sse_encoding import sse_frame
from sse_bridge.streams import PING

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


async def error(client: httpx.AsyncClient, url: str, status: int, code: str, **headers: str) -> dict[str, Any]:
    response = await client.get(url, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()["error"]
    assert body["code"] == code
    assert body["message"]
    return body


def retry_ms(body: bytes) -> int:
    """The reconnect wait a `retry:` block asks for."""
    field, _, value = body.decode().removesuffix("\r\n\r\n").partition(": ")
    assert field == "retry"
    return int(value)


def test_reconnect_waits_are_spread() -> None:
    waits = {retry_ms(retry_hint()) for _ in range(200)}
    assert min(waits) >= RETRY_MS
    assert max(waits) <= RETRY_MS * RETRY_SPREAD
    assert len(waits) > 50  # not one value for everyone


async def test_refusals_are_json_4xx() -> None:
    app = make_app(SilentStream(), Directory(), keepalive_s=15)
    issuer = tokens()
    good = issuer.issue(JOB, TENANT, KID)
    transport = httpx.ASGITransport(app=app)
    async with lifespan(app), httpx.AsyncClient(transport=transport, base_url="http://bridge.test") as client:
        url = f"/v1/jobs/{JOB}/events"
        await error(client, url, 401, "unauthenticated")
        await error(client, f"{url}?token=garbage", 403, "permission_denied")
        await error(client, url, 403, "permission_denied", authorization="Bearer garbage")
        forged = StreamTokens(Settings(stream_token_secret="someone-else-" + "y" * 32)).issue(JOB, TENANT, KID)
        await error(client, f"{url}?token={forged}", 403, "permission_denied")
        await error(client, f"/v1/jobs/{OTHER_JOB}/events?token={good}", 403, "permission_denied")
        expired = issuer.issue(JOB, TENANT, KID, now=time.time() - 10 * 86400)
        await error(client, f"{url}?token={expired}", 403, "permission_denied")
        missing = "job_" + "c" * 26
        await error(client, f"/v1/jobs/{missing}/events?token={issuer.issue(missing, TENANT, KID)}", 404, "not_found")
        # A token whose key is not a key of its tenant is refused before the job's owner is even asked.
        await error(client, f"{url}?token={issuer.issue(JOB, 'intruder', KID)}", 403, "permission_denied")
        body = await error(client, f"/v1/jobs/job_nope/events?token={good}", 400, "invalid_argument")
        assert body["field"] == "job_id"
        body = await error(client, f"{url}?token={good}", 400, "invalid_argument", **{"last-event-id": "x"})
        assert body["field"] == "after"
        body = await error(client, f"{url}?token={good}&after=002.2.1", 400, "invalid_argument")
        assert body["field"] == "after"


async def test_a_backend_failure_is_a_json_503_not_a_crash() -> None:
    app = make_app(SilentStream(), Directory(fail=True), keepalive_s=15)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with lifespan(app), httpx.AsyncClient(transport=transport, base_url="http://bridge.test") as client:
        await error(client, f"/v1/jobs/{JOB}/events?token={tokens().issue(JOB, TENANT, KID)}", 503, "unavailable")


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
