"""The JobService's RPCs as Prometheus metrics: how many ended with each status code, per method, and how long
they took. Outermost of the interceptors, so a call refused by authentication is counted too."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from services.job_service.auth_interceptor import SERVICE_PREFIX
from services.job_service.interceptors import Context, ServerInterceptor, rewrapped, streamed

HANDLED = Counter(
    "jobstream_grpc_server_handled",
    "RPCs the JobService completed, by method and gRPC status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
HANDLING = Histogram(
    "jobstream_grpc_server_handling_seconds",
    "How long the JobService took to complete an RPC (a stream: until its last message), by method.",
    ["grpc_service", "grpc_method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)


def _code(context: Context, error: BaseException | None) -> str:
    code = context.code()  # what an abort or set_code chose
    if isinstance(code, grpc.StatusCode):
        return code.name
    if error is None:
        return "OK"
    return "CANCELLED" if isinstance(error, asyncio.CancelledError) else "UNKNOWN"


class MetricsInterceptor(ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        service, _, method = str(handler_call_details.method).lstrip("/").rpartition("/")
        # Streaming requests (reflection) are not the API's: not counted. The JobService's handlers take their
        # one request as a stream by the time they reach this interceptor (auth_interceptor.py).
        return rewrapped(
            handler,
            lambda behavior: _unary(behavior, service, method),
            lambda behavior: _unary_stream(behavior, service, method),
            streaming_requests=str(handler_call_details.method).startswith(SERVICE_PREFIX),
        )


@contextlib.contextmanager
def _observed(service: str, method: str, context: Context) -> Iterator[None]:
    """Count the call under its final status code and time it, however it ends."""
    started = time.perf_counter()
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        HANDLED.labels(service, method, _code(context, error)).inc()
        HANDLING.labels(service, method).observe(time.perf_counter() - started)


def _unary(behavior: Callable[..., Any], service: str, method: str) -> Callable[[Any, Context], Awaitable[Any]]:
    async def handle(request: Any, context: Context) -> Any:
        with _observed(service, method, context):
            return await behavior(request, context)

    return handle


def _unary_stream(
    behavior: Callable[..., Any], service: str, method: str
) -> Callable[[Any, Context], AsyncIterator[Any]]:
    async def handle(request: Any, context: Context) -> AsyncIterator[Any]:
        with _observed(service, method, context):
            async for response in streamed(behavior(request, context)):
                yield response

    return handle
