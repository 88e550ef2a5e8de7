"""OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, and the statuses the SDKs act on.

The SDKs retry 408, 409, 429 and 5xx without a key of their own: a refusal that retrying cannot change is a 400
here (an idempotency key reused for another request included), never a 409."""

from __future__ import annotations

import grpc
from starlette.responses import JSONResponse

from sse_bridge.http_api import FIELD

# gRPC status -> (HTTP status, OpenAI error type)
_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error"),
    grpc.StatusCode.FAILED_PRECONDITION: (400, "invalid_request_error"),
    grpc.StatusCode.ALREADY_EXISTS: (400, "invalid_request_error"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "invalid_request_error"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "authentication_error"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_error"),
    grpc.StatusCode.NOT_FOUND: (404, "invalid_request_error"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    grpc.StatusCode.UNIMPLEMENTED: (400, "invalid_request_error"),
    grpc.StatusCode.UNAVAILABLE: (503, "server_error"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (503, "server_error"),
}
RETRY_AFTER_S = 5


def openai_error(
    status: int, message: str, *, kind: str, param: str | None = None, code: str | None = None
) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status in (429, 503) else {}
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def invalid(message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    return openai_error(400, message, kind="invalid_request_error", param=param, code=code)


def refused_param(param: str, message: str, code: str | None) -> JSONResponse:
    """A request parameter refused; an unknown model is a 404, as OpenAI answers it."""
    status = 404 if code == "model_not_found" else 400
    return openai_error(status, message, kind="invalid_request_error", param=param, code=code)


def not_found(what: str, ident: str) -> JSONResponse:
    return openai_error(404, f"No {what} found with id '{ident}'.", kind="invalid_request_error", code="not_found")


def from_rpc(exc: grpc.aio.AioRpcError, fields: dict[str, str] | None = None) -> JSONResponse:
    """A JobService refusal in OpenAI's shape; `fields` renames the JobService's field to the request's param."""
    code = exc.code()
    status, kind = _STATUS.get(code, (500, "server_error"))
    message = exc.details() or code.name
    match = FIELD.match(message)
    param = (fields or {}).get(match.group(1), match.group(1)) if match else None
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and match:  # an input over its size: retrying cannot help
        status, kind = 400, "invalid_request_error"
    error_code = "idempotency_key_reused" if code == grpc.StatusCode.ALREADY_EXISTS else code.name.lower()
    return openai_error(status, message, kind=kind, param=param, code=error_code)


def no_retry(response: JSONResponse) -> JSONResponse:
    """An error answered after the job was created: the SDKs' automatic retry (they send no idempotency key of
    their own) would create another, so they are told not to (`x-should-retry`, which both honour)."""
    response.headers["x-should-retry"] = "false"
    return response
