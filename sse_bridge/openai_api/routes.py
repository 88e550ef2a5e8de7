"""Every route of the OpenAI-compatible surface, for the bridge's app."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sse_bridge.openai_api import chat_api, models_api, responses_api
from sse_bridge.openai_api.errors import openai_error


def openai_routes() -> list[Route]:
    return [*responses_api.routes(), *chat_api.routes(), *models_api.routes()]


def is_openai_path(path: str) -> bool:
    """Under /v1/ but not the jobs API: a path an OpenAI client may call, answered in OpenAI's error shape."""
    return path.startswith("/v1/") and not path.startswith("/v1/jobs")


def openai_http_error(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 404:
        message = f"Unknown request URL: {request.method} {request.url.path[:128]}."
        return openai_error(404, message, kind="invalid_request_error", code="unknown_url")
    return openai_error(exc.status_code, str(exc.detail), kind="invalid_request_error")


def openai_server_error() -> JSONResponse:
    return openai_error(503, "The server could not serve this request; retry shortly.", kind="server_error")
