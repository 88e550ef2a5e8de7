"""Authentication before anything else: a call without a valid API key is refused before its request is
even parsed (an inline prompt may be 16 MiB), and the handlers get the caller's tenant from here."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from jobstream.auth import Caller, KeysFileError, bearer_key, caller_of, read_keys_file
from jobstream.settings import Settings
from services.job_service.interceptors import ServerInterceptor, rewrapped

log = logging.getLogger(__name__)
SERVICE_PREFIX = "/jobstream.v1.JobService/"
# Who the call being handled comes from; set by the interceptor inside the handler's own task.
CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller")
UNAUTHENTICATED = "send 'authorization: Bearer <api key>' with a valid key"


def _unparsed(_: bytes) -> None:
    """The refused call's request is never parsed."""


def _refusal(code: grpc.StatusCode, message: str, streaming: bool) -> grpc.RpcMethodHandler[Any, Any]:
    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(code, message)

    if streaming:

        async def refuse_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort(code, message)
            yield  # pragma: no cover - abort raises; this makes it an async generator

        return grpc.unary_stream_rpc_method_handler(refuse_stream, _unparsed)
    return grpc.unary_unary_rpc_method_handler(refuse, _unparsed)


def _as(caller: Caller, behavior: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
    if streaming:

        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            CALLER.set(caller)
            async for response in behavior(request, context):
                yield response

        return stream

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        CALLER.set(caller)
        return await behavior(request, context)

    return unary


class AuthInterceptor(ServerInterceptor):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or not str(handler_call_details.method).startswith(SERVICE_PREFIX):
            return handler  # health checks and reflection need no key
        streaming = handler.unary_stream is not None
        try:
            # Re-read each call: keys are configuration, and rotating one must not need a restart.
            header = str(dict(handler_call_details.invocation_metadata or ()).get("authorization", ""))
            caller = caller_of(read_keys_file(self.settings), bearer_key(header))
        except KeysFileError as exc:
            # An operator's broken edit of the keys file: retryable, said plainly; its details are for the log.
            log.error("%s", exc)
            return _refusal(grpc.StatusCode.UNAVAILABLE, "the API keys cannot be read; retry shortly", streaming)
        if caller is None:
            return _refusal(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED, streaming)
        # The JobService has no client-streaming RPCs.
        return rewrapped(
            handler,
            lambda behavior: _as(caller, behavior, streaming=False),
            lambda behavior: _as(caller, behavior, streaming=True),
        )
