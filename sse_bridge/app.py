"""The bridge, jobstream's one HTTP process: `GET /v1/jobs/{job_id}/events` turns a job's event log into
Server-Sent Events, and the JobService's RPCs are served over HTTP/JSON (sse_bridge/http_api.py)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import logging
import random
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from temporalio.service import RPCError, RPCStatusCode

from jobstream import cursors, tracing
from jobstream.auth import bearer_key
from jobstream.delivery import Delivery
from jobstream.event_hub import EventHub, SlowConsumerError
from jobstream.event_types import EventType
from jobstream.job_directory import JobDirectory
from jobstream.job_events import with_fresh_result_url
from jobstream.keys_store import KeysFile, KeysFileError
from jobstream.logs import bind_job
from jobstream.pipelines import load_pipelines
from jobstream.stream_tokens import InvalidStreamToken, StreamGrant, StreamTokens
from sse_bridge import http_api, metrics
from sse_bridge.admission import Admission, Refusal
from sse_bridge.http_api import HttpApi, error
from sse_bridge.openai_api.routes import is_openai_path, openai_http_error, openai_routes, openai_server_error
from sse_bridge.openai_api.surface import Surface
from sse_bridge.sse_encoding import frames_of
from sse_bridge.stream_progress import StreamProgress
from sse_bridge.streams import EventSourceResponse, Streams

JOB_ID = re.compile(r"^job_[a-z2-7]{26}$")
log = logging.getLogger(__name__)
KEEPALIVE_S = 15
# EventSource waits this long before it reconnects (browsers default to about 3 s).
RETRY_MS = 1000
# Each stream its own wait, up to three times that: after a bridge restart its thousands of streams come back
# spread over two seconds, not all in the same millisecond.
RETRY_SPREAD = 3


def retry_hint() -> bytes:
    return f"retry: {random.randint(RETRY_MS, RETRY_MS * RETRY_SPREAD)}\r\n\r\n".encode()


TRANSIENT = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED})
TRANSIENT_RETRY_S = 1.0
# `generate` first: the page's default.
PIPELINES = sorted(load_pipelines().names(), key=lambda name: (name != "generate", name.startswith("drill"), name))


class Bridge:
    def __init__(
        self,
        hub: EventHub,
        directory: JobDirectory,
        tokens: StreamTokens,
        keepalive_s: int = KEEPALIVE_S,
        api: HttpApi | None = None,
        send_timeout_s: float | None = None,
        metrics: bool = True,
        *,
        admission: Admission,
    ) -> None:
        self.hub = hub
        self.metrics = metrics
        self.admission = admission
        self.directory = directory
        self.tokens = tokens
        self.api = api
        self.streams = Streams(keepalive_s, send_timeout_s)

    async def events(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        if not JOB_ID.fullmatch(job_id):
            return error(400, "invalid_argument", "job_id is malformed", field="job_id")
        bind_job(job_id)
        authorized = self._authorized(request, job_id)
        if isinstance(authorized, Response):
            return authorized
        token, grant, document = authorized
        # strip: httptools, unlike h11, hands header values over with their optional surrounding whitespace.
        after = request.query_params.get("after") or request.headers.get("last-event-id", "").strip(" \t")
        if after and not cursors.is_valid(after):
            return error(400, "invalid_argument", "after / Last-Event-ID is not an event id", field="after")
        if after >= cursors.terminal():
            # The story has ended and the client has all of it: 204 is what makes EventSource stop.
            return Response(status_code=204)
        checked = await self._owned_if_reachable(job_id, grant.tenant)
        if isinstance(checked, Response):
            return checked
        try:
            ticket = self.admission.admit(grant, token, document)
        except Refusal as refused:
            return error(refused.status, refused.code, refused.message)
        except KeysFileError as exc:
            log.error("%s", exc)
            return error(503, "unavailable", "the tenants' limits cannot be read; retry shortly")
        frames = self._frames(job_id, after, grant.tenant, checked=checked)
        return EventSourceResponse(frames, self.streams, on_close=ticket.release, until=ticket.revoked)

    def _authorized(self, request: Request, job_id: str) -> tuple[str, StreamGrant, KeysFile] | Response:
        """The stream token (from ?token= or Authorization), its verified grant for this job and the keys file it
        was checked against; or the refusal (401, 403, 503)."""
        token = request.query_params.get("token", "") or bearer_key(request.headers.get("authorization", ""))
        if not token:
            return error(401, "unauthenticated", "a stream token is required (?token= or Authorization)")
        try:
            grant = self.tokens.verify(token, job_id)
            document = self.admission.read()
            if not self.admission.key_is_live(grant, document):
                raise InvalidStreamToken("the API key it was issued to has been revoked")
        except InvalidStreamToken as exc:
            return error(403, "permission_denied", f"stream token rejected: {exc}")
        except KeysFileError as exc:
            log.error("%s", exc)
            return error(503, "unavailable", "the API keys cannot be read; retry shortly")
        return token, grant, document

    async def _frames(self, job_id: str, after: str, tenant: str, checked: bool) -> AsyncGenerator[bytes, None]:
        """The stream's body: each chunk everything the watcher had pending, in one write."""
        yield retry_hint()
        if not checked and not await self._owned_once_reachable(job_id, tenant):
            return
        progress = StreamProgress(job_id)
        # aclosing: a stream that ends mid-watch (cut off, gone away) leaves the job's watchers at once.
        batches = contextlib.aclosing(self.hub.watch_batches(job_id, after, owner=tenant))
        try:
            async with batches as watch:
                async for watched in watch:
                    # Only a job.completed carries a URL: the common batch (tokens) is not awaited on.
                    done = watched[-1].event.type == EventType.JOB_COMPLETED
                    batch = await self._with_fresh_result_url(watched) if done else watched
                    if self.metrics:
                        progress.count(batch)
                    span = progress.milestone(batch) if tracing.enabled() else None
                    try:
                        yield frames_of(batch)
                    finally:
                        if span is not None:
                            span.end()  # once the write is done: the span covers the send to the client
        except SlowConsumerError:  # the client reconnects with Last-Event-ID
            metrics.SLOW_CLIENTS_CUT.labels("queue_full").inc()

    async def _with_fresh_result_url(self, batch: list[Delivery]) -> list[Delivery]:
        """The batch, its job.completed (always last) carrying a result URL that still works."""
        last = batch[-1]
        fresh = await with_fresh_result_url(last.event, self.directory.store)
        return batch if fresh is last.event else [*batch[:-1], Delivery(fresh, headers=last.headers)]

    async def _owned_if_reachable(self, job_id: str, tenant: str) -> bool | Response:
        """True if the job is the tenant's, 404 if not; False while Temporal is away (the stream is held and
        asks again once it answers, never a 5xx)."""
        try:
            owner = await self.directory.tenant(job_id)
        except RPCError as exc:
            if exc.status not in TRANSIENT:
                raise
            return False
        return True if owner == tenant else error(404, "not_found", f"job {job_id} not found")

    async def _owned_once_reachable(self, job_id: str, tenant: str) -> bool:
        """Ask Temporal until it answers (the streams' timer keeps the connection alive meanwhile)."""
        while True:
            try:
                return await self.directory.tenant(job_id) == tenant
            except RPCError as exc:
                if exc.status not in TRANSIENT:
                    raise
            await asyncio.sleep(TRANSIENT_RETRY_S)


PAGE = Path(__file__).with_name("page.html")


def _digest(page: str, element: str) -> str:
    """The CSP source naming the page's one inline `element` (script or style) by its SHA-256."""
    body = page.split(f"<{element}>", 1)[1].split(f"</{element}>", 1)[0]
    return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"


def _page() -> tuple[str, dict[str, str]]:
    options = "".join(f'<option value="{html.escape(name)}">{html.escape(name)}</option>' for name in PIPELINES)
    text = PAGE.read_text().replace("{{PIPELINE_OPTIONS}}", options).replace("{{API_ORIGIN}}", "")
    # Only the page's own script and style run, it talks to its own origin only, and it sends no Referer
    # (its URL may carry a stream token).
    policy = (
        f"default-src 'none'; script-src {_digest(text, 'script')}; style-src {_digest(text, 'style')}; "
        "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    headers = {
        "Content-Security-Policy": policy,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return text, headers


PAGE_TEXT, PAGE_HEADERS = _page()


async def page(_: Request) -> Response:
    """The live page: submit a job and watch it stream (plain HTML and JavaScript, no build step)."""
    return HTMLResponse(PAGE_TEXT, headers=PAGE_HEADERS)


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if is_openai_path(request.url.path):
        return openai_http_error(request, exc)
    return error(exc.status_code, "http_error", str(exc.detail))


async def server_error(request: Request, exc: Exception) -> Response:
    if is_openai_path(request.url.path):
        return openai_server_error()
    return error(503, "unavailable", "the bridge could not serve this request; retry shortly")


class _Events:
    """The stream route as a plain ASGI app, not a request handler: Starlette's handler wrapper would add a
    layer to every send of every stream (HTTP errors are still handled, by the app's ExceptionMiddleware)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        bridge: Bridge = request.app.state.bridge
        response = await bridge.events(request)
        await response(scope, receive, send)


def create_app(
    open_bridge: Callable[[], contextlib.AbstractAsyncContextManager[Bridge]],
    cors_origins: str = "",
) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_bridge() as bridge:
            app.state.bridge = bridge
            app.state.api = bridge.api
            if bridge.api is not None:
                app.state.openai = Surface(
                    bridge.api, bridge.hub, bridge.streams, bridge.admission, bridge.directory.client
                )
            yield

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/healthz", healthz),
            Route("/v1/jobs/{job_id}/events", _Events(), methods=["GET"]),
            *http_api.routes(),
            *openai_routes(),
        ],
        middleware=[cors(cors_origins)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    # /v1/jobs/ is not /v1/jobs: no redirect (307) for a stray slash, a plain JSON 404.
    app.router.redirect_slashes = False
    return app


def cors(origins: str) -> Middleware:
    """CORS for the API and the streams: the origins of a setting, `*` standing for a port or a host part."""
    patterns = [origin.strip() for origin in origins.split(",") if origin.strip()]
    regex = "|".join(re.escape(origin).replace(r"\*", "[A-Za-z0-9-]+") for origin in patterns)
    return Middleware(
        CORSMiddleware,
        allow_origin_regex=f"^(?:{regex})$" if regex else None,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
        expose_headers=["Location"],
        max_age=600,
    )
