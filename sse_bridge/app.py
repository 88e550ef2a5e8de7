"""The SSE bridge: `GET /v1/jobs/{job_id}/events` turns a job's event log into Server-Sent Events."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jobstream import cursors
from jobstream.event_log import event_json
from jobstream.event_stream import EventStream, SlowConsumerError
from jobstream.job_directory import JobDirectory
from jobstream.stream_tokens import InvalidStreamToken, StreamTokens

JOB_ID = re.compile(r"^job_[a-z2-7]{26}$")
KEEPALIVE_S = 15


def problem(status: int, code: str, message: str, **extra: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


class Bridge:
    def __init__(
        self, stream: EventStream, directory: JobDirectory, tokens: StreamTokens, keepalive_s: int = KEEPALIVE_S
    ) -> None:
        self.stream = stream
        self.directory = directory
        self.tokens = tokens
        self.keepalive_s = keepalive_s

    async def events(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        if not JOB_ID.fullmatch(job_id):
            return problem(400, "invalid_argument", "job_id is malformed", field="job_id")
        token = request.query_params.get("token", "")
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        if not token and scheme.lower() == "bearer":
            token = bearer.strip()
        if not token:
            return problem(401, "unauthenticated", "a stream token is required (?token= or Authorization)")
        try:
            grant = self.tokens.verify(token, job_id)
        except InvalidStreamToken as exc:
            return problem(403, "permission_denied", f"stream token rejected: {exc}")
        after = request.query_params.get("after") or request.headers.get("last-event-id", "")
        if after and not cursors.is_valid(after):
            return problem(400, "invalid_argument", "after / Last-Event-ID is not an event id", field="after")
        if await self.directory.tenant(job_id) != grant.tenant:
            return problem(404, "not_found", f"job {job_id} not found")
        return EventSourceResponse(self._render(job_id, after), ping=self.keepalive_s)

    async def _render(self, job_id: str, after: str) -> AsyncIterator[dict[str, Any]]:
        with contextlib.suppress(SlowConsumerError):  # the client reconnects with Last-Event-ID
            async for event in self.stream.watch(job_id, after):
                yield {"id": event.id, "event": event.type, "data": event_json(event)}


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, "http_error", str(exc.detail))


async def server_error(_: Request, exc: Exception) -> Response:
    return problem(503, "unavailable", "the bridge could not serve this request; retry shortly")


async def events(request: Request) -> Response:
    bridge: Bridge = request.app.state.bridge
    return await bridge.events(request)


def create_app(open_bridge: Callable[[], contextlib.AbstractAsyncContextManager[Bridge]]) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_bridge() as bridge:
            app.state.bridge = bridge
            yield

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/v1/jobs/{job_id}/events", events)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
