"""Status codes, in one place: for the operations' refusals (errors.py), and for what never reaches a handler's
own checks: an undecodable request, a dependency outage.

Without this, grpc answers a request protobuf cannot parse (invalid UTF-8 in a string field, a truncated
message) with UNKNOWN "Unexpected DecodeError", and a handler that meets a Temporal, Kafka or MinIO
outage with UNKNOWN too; clients must be told INVALID_ARGUMENT (fix the request) or UNAVAILABLE (retry).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import urllib3.exceptions
from aiokafka.errors import KafkaError
from google.protobuf.message import DecodeError
from temporalio.service import RPCError, RPCStatusCode

from services.job_service import errors

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
# Temporal answers these while it restarts or is overloaded (RESOURCE_EXHAUSTED: its rate limits): the caller
# should retry, as with our own outage.
_TEMPORAL_TRANSIENT = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}
)


_STATUS_OF_REFUSAL: dict[type[errors.Refused], grpc.StatusCode] = {
    errors.InvalidField: grpc.StatusCode.INVALID_ARGUMENT,
    errors.TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.ChangedUnderfoot: grpc.StatusCode.FAILED_PRECONDITION,
    errors.OverLimit: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.JobNotFound: grpc.StatusCode.NOT_FOUND,
    errors.KeyReused: grpc.StatusCode.ALREADY_EXISTS,
    errors.NotAuthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.LimitsUnreadable: grpc.StatusCode.UNAVAILABLE,
}


def status_of(refusal: errors.Refused) -> grpc.StatusCode:
    """The status code a refusal is answered with (a refusal without its own entry is a bug: INTERNAL)."""
    for kind in type(refusal).__mro__:
        if (code := _STATUS_OF_REFUSAL.get(kind)) is not None:
            return code
    return grpc.StatusCode.INTERNAL


@dataclass(frozen=True)
class _Undecodable:
    """Stands in for a request the method's deserializer refused, so the handler wrapper can answer it."""

    message_type: str


def _tolerant(deserialize: Callable[[bytes], Any], method: str) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError:
            return _Undecodable(method)

    return parse


def _outage(error: BaseException) -> str | None:
    """What is unavailable, if `error` is a dependency being away rather than a bug."""
    if isinstance(error, RPCError) and error.status in _TEMPORAL_TRANSIENT:
        return "Temporal"
    if isinstance(error, KafkaError):
        return "Kafka"
    if isinstance(error, urllib3.exceptions.HTTPError):
        return "the payload store"
    return None


async def _refuse_undecodable(request: Any, context: Context) -> None:
    if isinstance(request, _Undecodable):
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request is not a valid {request.message_type} message "
            "(malformed or truncated protobuf, or a string field that is not UTF-8)",
        )


async def _answer(error: BaseException, context: Context) -> None:
    """End the call with the status `error` calls for: a refusal's, or UNAVAILABLE for an outage; else re-raise."""
    if isinstance(error, errors.Refused):
        if isinstance(error, errors.LimitsUnreadable):
            log.error("%r", error.__cause__)
        await context.abort(status_of(error), str(error))
    what = _outage(error)
    if what is None:
        raise error
    log.warning("%s unavailable: %r", what, error)
    await context.abort(grpc.StatusCode.UNAVAILABLE, f"{what} is unavailable; retry shortly")


def _unary(behavior: Callable[..., Any]) -> Callable[[Any, Context], Awaitable[Any]]:
    async def handle(request: Any, context: Context) -> Any:
        await _refuse_undecodable(request, context)
        try:
            return await behavior(request, context)
        except Exception as error:
            await _answer(error, context)

    return handle


async def streamed(responses: Any) -> AsyncIterator[Any]:
    """What a server-streaming behaviour returned, as responses: an async generator's, or none from a handler
    that writes through context.write() (health's Watch), once it has run."""
    if inspect.isasyncgen(responses):
        async for response in responses:
            yield response
    else:
        await responses


def _unary_stream(behavior: Callable[..., Any]) -> Callable[[Any, Context], AsyncIterator[Any]]:
    async def handle(request: Any, context: Context) -> AsyncIterator[Any]:
        await _refuse_undecodable(request, context)
        try:
            async for response in streamed(behavior(request, context)):
                yield response
        except Exception as error:
            await _answer(error, context)

    return handle


if TYPE_CHECKING:  # generic only in the type stubs
    ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    ServerInterceptor = grpc.aio.ServerInterceptor


Behavior = Callable[..., Any]


def rewrapped(
    handler: grpc.RpcMethodHandler[Any, Any],
    unary: Callable[[Behavior], Behavior],
    unary_stream: Callable[[Behavior], Behavior],
    deserializer: Callable[[bytes], Any] | None = None,
    *,
    streaming_requests: bool = False,
) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` with its unary or server-streaming behaviour wrapped (and, if given, another request
    deserializer). A handler that takes a request stream is returned as it is (reflection), unless
    `streaming_requests`: then its single or streamed response is wrapped as a unary or a server-streaming
    one is (the JobService's handlers take their one request as a stream: auth_interceptor.py says why)."""
    request = deserializer or handler.request_deserializer
    serialize = handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), request, serialize)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(unary_stream(handler.unary_stream), request, serialize)
    if streaming_requests and handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), request, serialize)
    if streaming_requests and handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(unary_stream(handler.stream_stream), request, serialize)
    return handler


class StatusInterceptor(ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method = str(handler_call_details.method)
        deserialize = _tolerant(handler.request_deserializer, _message_name(handler.request_deserializer, method))
        # Streaming requests (reflection) parse message by message: left to grpc.
        return rewrapped(handler, _unary, _unary_stream, deserialize)


def _message_name(deserialize: Callable[[bytes], Any], method: str) -> str:
    # Generated stubs pass the message class's FromString: name the message the client should have sent.
    owner = getattr(deserialize, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", f"{method} request"))
