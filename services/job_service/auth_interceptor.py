"""Authentication before anything else: a call without a valid API key is refused before its request is
even parsed (an inline prompt may be 16 MiB), and the handlers get the caller's tenant from here."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from jobstream.auth import Caller, bearer_key, caller_of
from jobstream.keys_store import KeysFileError, read_keys_file
from jobstream.settings import Settings
from jobstream.tenants import limits_in
from services.job_service.call_slots import CallRefused, CallSlots
from services.job_service.interceptors import Behavior, Context, ServerInterceptor, streamed

log = logging.getLogger(__name__)
SERVICE_PREFIX = "/jobstream.v1.JobService/"
# Who the call being handled comes from; set by the interceptor inside the handler's own task.
CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller")
UNAUTHENTICATED = "send 'authorization: Bearer <api key>' with a valid key"


def _refusal(code: grpc.StatusCode, message: str, streaming: bool) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler that answers at once. It takes a request stream, so gRPC runs it on the call's headers alone:
    a unary handler would first wait for the whole request message, however long the client takes to send
    it, and the refused call would hold its place until then."""

    async def refuse(requests: Any, context: Context) -> None:
        await context.abort(code, message)

    if streaming:

        async def refuse_stream(requests: Any, context: Context) -> Any:
            await context.abort(code, message)
            yield  # pragma: no cover - abort raises; this makes it an async generator

        return grpc.stream_stream_rpc_method_handler(refuse_stream)
    return grpc.stream_unary_rpc_method_handler(refuse)


async def first_request(requests: AsyncIterator[Any], context: Context, timeout_s: float) -> Any:
    """The call's one request message, once it has arrived: DEADLINE_EXCEEDED if it takes longer than
    `timeout_s` after the headers, INVALID_ARGUMENT if the client ends its side without sending one."""
    try:
        return await asyncio.wait_for(anext(aiter(requests)), timeout_s)
    except TimeoutError:
        await context.abort(
            grpc.StatusCode.DEADLINE_EXCEEDED, f"the request message did not arrive within {timeout_s:g} s"
        )
    except StopAsyncIteration:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the call sent no request message")


def read_in_time(handler: grpc.RpcMethodHandler[Any, Any], timeout_s: float) -> grpc.RpcMethodHandler[Any, Any]:
    """A unary-request handler as a request-streaming one that waits at most `timeout_s` for its message
    (health checks: they need no key, so anyone could hold them open otherwise)."""
    return _admitted(handler, timeout_s, lambda: _nothing, None)


def _nothing() -> None:
    """Releases no slot."""


# Takes a call slot and returns the function that gives it back; raises CallRefused when there is none.
TakeSlot = Callable[[], Callable[[], None]]


@contextlib.asynccontextmanager
async def _admitted_call(
    requests: AsyncIterator[Any], context: Context, timeout_s: float, take: TakeSlot, caller: Caller | None
) -> AsyncIterator[Any]:
    """The call's request, with the caller set and a slot held until the block ends (RESOURCE_EXHAUSTED when
    there is no slot)."""
    if caller is not None:
        CALLER.set(caller)
    try:
        release = take()
    except CallRefused as refused:
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refused.message)
        raise AssertionError("unreachable") from refused  # abort raises
    try:
        yield await first_request(requests, context, timeout_s)
    finally:
        release()


def _admitted(
    handler: grpc.RpcMethodHandler[Any, Any], timeout_s: float, take: TakeSlot, caller: Caller | None
) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` (unary or server-streaming) run as the caller, inside a slot, on its request once it came."""
    if handler.unary_stream is not None:
        behavior_stream: Behavior = handler.unary_stream

        async def stream(requests: Any, context: Context) -> Any:
            async with _admitted_call(requests, context, timeout_s, take, caller) as request:
                async for response in streamed(behavior_stream(request, context)):
                    yield response

        return grpc.stream_stream_rpc_method_handler(stream, handler.request_deserializer, handler.response_serializer)
    if handler.unary_unary is None:
        return handler  # streaming requests (reflection) read their messages as they come
    behavior: Behavior = handler.unary_unary

    async def unary(requests: Any, context: Context) -> Any:
        async with _admitted_call(requests, context, timeout_s, take, caller) as request:
            return await behavior(request, context)

    return grpc.stream_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)


class AuthInterceptor(ServerInterceptor):
    def __init__(self, settings: Settings, slots: CallSlots | None = None) -> None:
        self.settings = settings
        self.slots = slots or CallSlots(settings.grpc_max_concurrent_rpcs)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        timeout_s = self.settings.grpc_request_timeout_s
        if handler is None:
            return handler
        if not str(handler_call_details.method).startswith(SERVICE_PREFIX):
            return read_in_time(handler, timeout_s)  # health checks and reflection need no key
        streaming = handler.unary_stream is not None
        try:
            # Re-read each call: keys are configuration, and rotating one must not need a restart.
            header = str(dict(handler_call_details.invocation_metadata or ()).get("authorization", ""))
            caller = caller_of(read_keys_file(self.settings), bearer_key(header))
            limit = limits_in(caller.keys_file, self.settings, caller.tenant).max_calls if caller else 0
        except KeysFileError as exc:
            # An operator's broken edit of the keys file: retryable, said plainly; its details are for the log.
            log.error("%s", exc)
            return _refusal(grpc.StatusCode.UNAVAILABLE, "the API keys cannot be read; retry shortly", streaming)
        if caller is None:
            return _refusal(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED, streaming)
        tenant = caller.tenant
        # The JobService has no client-streaming RPCs.
        return _admitted(handler, timeout_s, lambda: self.slots.take(tenant, limit, streaming), caller)
