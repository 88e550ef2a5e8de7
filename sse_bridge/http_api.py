"""The JobService over HTTP/JSON: each RPC's `google.api.http` annotation (protos/jobstream/v1) becomes a
route here, transcoded to a gRPC call to the JobService, so the logic lives once, in the JobService. Envoy's
gRPC-JSON transcoder or grpc-gateway can serve the same routes from the same annotations in production.

JSON follows proto3 JSON mapping (lowerCamelCase out; either spelling in). Errors are
`{"error": {"code", "message", "field"?}}` with the HTTP status Google's API design guide gives each gRPC
code. `POST /v1/jobs` answers 202 Accepted with `Location: /v1/jobs/{job_id}`; the `Idempotency-Key`
header is the request's `idempotency_key`.

Nobody makes the bridge work before showing a key: the key is checked before a byte of the body is read, the
body is read no further than its limit, and its shape is bounded before protobuf's (slow, per element) parser
sees it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.api import annotations_pb2
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jobstream.auth import bearer_key, caller_of
from jobstream.keys_store import KeysFile, KeysFileError
from jobstream.v1 import job_service_pb2
from jobstream.v1.job_service_pb2_grpc import JobServiceStub

# https://cloud.google.com/apis/design/errors#handling_errors
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
# The JobService says which field is at fault as "field: message" (services/job_service/validation.py).
FIELD = re.compile(r"^([a-z_][a-z0-9_.]*): ")
UNKNOWN_FIELD = re.compile(r'has no field named "([^"]+)"')
CALL_TIMEOUT_S = 30.0
RETRY_AFTER_S = 5
# The routes that stream (WatchJob) are served as Server-Sent Events at /v1/jobs/{job_id}/events instead.
SKIPPED = frozenset({"WatchJob"})
# A request body's shape: the largest request (SubmitJob) has about twenty values; its parameters' lists
# are short (validation.py). Protobuf's JSON parser costs microseconds per value, so the count is what matters.
MAX_BODY_VALUES = 1000
MAX_BODY_DEPTH = 8
INTEGER = re.compile(r"^-?[0-9]{1,20}$")


def error(status: int, code: str, message: str, field: str = "", close: bool = False) -> JSONResponse:
    """The error as JSON; `close` ends the connection after it (the rest of an unread body is not read)."""
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    headers = {}
    if status == 429:  # a quota refused the call: when to try again; quotas free up as jobs end and streams close
        headers["Retry-After"] = str(RETRY_AFTER_S)
    if close:
        headers["Connection"] = "close"
    return JSONResponse({"error": body}, status_code=status, headers=headers)


class BadBody(ValueError):
    pass


def _values(data: Any, depth: int = 0) -> Iterator[None]:
    """One item per value in `data`, depth first; BadBody past the depth limit."""
    if depth > MAX_BODY_DEPTH:
        raise BadBody(f"the body is nested more than {MAX_BODY_DEPTH} levels deep")
    yield None
    children = data.values() if isinstance(data, dict) else data if isinstance(data, list) else ()
    for child in children:
        yield from _values(child, depth + 1)


def check_shape(data: Any) -> None:
    """BadBody if `data` has more values or levels than any valid request: said before protobuf parses it."""
    for count, _ in enumerate(_values(data), 1):
        if count > MAX_BODY_VALUES:
            raise BadBody(f"the body has more than {MAX_BODY_VALUES} values; no request has that many")


@dataclass(frozen=True)
class Binding:
    """One RPC's HTTP mapping, read from its annotation."""

    method: str  # GET or POST
    path: str  # Starlette's path template, e.g. /v1/jobs/{job_id}:cancel
    body: str  # "*" (the whole request) or ""
    rpc: MethodDescriptor


def bindings() -> list[Binding]:
    found = []
    for rpc in job_service_pb2.DESCRIPTOR.services_by_name["JobService"].methods:
        if rpc.name in SKIPPED:
            continue
        rule = rpc.GetOptions().Extensions[annotations_pb2.http]
        verb = rule.WhichOneof("pattern")
        if verb is None:
            continue
        found.append(Binding(verb.upper(), getattr(rule, verb), rule.body, rpc))
    return found


def routes() -> list[Route]:
    """One route per annotated RPC; each calls the app's HttpApi (built with the app's gRPC channel)."""

    def endpoint(binding: Binding) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            api: HttpApi = request.app.state.api
            return await api.call(binding, request)

        return handle

    return [Route(b.path, endpoint(b), methods=[b.method]) for b in bindings()]


class HttpApi:
    def __init__(self, channel: grpc.aio.Channel, max_body_bytes: int, read_keys: Callable[[], KeysFile]) -> None:
        self.stub = JobServiceStub(channel)
        self.max_body_bytes = max_body_bytes
        self.read_keys = read_keys

    async def call(self, binding: Binding, request: Request) -> Response:
        # strip: httptools hands header values over with their optional surrounding whitespace.
        authorization = request.headers.get("authorization", "").strip(" \t")
        refused = self.refusal(authorization)
        if refused is not None:
            return refused
        message = GetMessageClass(binding.rpc.input_type)()
        problem = await self.fill(message, request, binding)
        if problem is not None:
            return problem
        try:
            reply: Message = await getattr(self.stub, binding.rpc.name)(
                message, metadata=[("authorization", authorization)], timeout=CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            return rpc_error(exc)
        body = json_format.MessageToDict(reply)
        if binding.rpc.name == "SubmitJob":
            return JSONResponse(body, status_code=202, headers={"Location": f"/v1/jobs/{body['jobId']}"})
        return JSONResponse(body)

    def refusal(self, authorization: str) -> Response | None:
        """401 for a missing or unknown key, before the body is read (the JobService checks the key again)."""
        try:
            caller = caller_of(self.read_keys(), bearer_key(authorization))
        except KeysFileError:
            return error(503, "unavailable", "the API keys cannot be read; retry shortly", close=True)
        if caller is None:
            return error(401, "unauthenticated", "send 'Authorization: Bearer <api key>' with a valid key", close=True)
        return None

    async def body(self, request: Request) -> bytes:
        """The body, read no further than the limit (BadBody past it, whatever Content-Length said)."""
        declared = request.headers.get("content-length", "")
        if declared and (not INTEGER.fullmatch(declared) or int(declared) > self.max_body_bytes):
            raise BadBody(f"the body is over {self.max_body_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BadBody(f"the body is over {self.max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def fill(self, message: Message, request: Request, binding: Binding) -> Response | None:
        """Body, query and path into the request message; a 4xx response if they do not fit it."""
        try:
            data = await self._data(message, request, binding)
            if isinstance(data, Response):
                return data
            check_shape(data)
            if (clash := _path_into(data, message, request.path_params)) is not None:
                return clash
            json_format.ParseDict(data, message)
        except UnicodeDecodeError as exc:
            return error(400, "invalid_argument", f"the body is not UTF-8 (byte {exc.start})")
        except json.JSONDecodeError as exc:
            return error(400, "invalid_argument", f"the body is not JSON: {exc.msg} (at {exc.pos})")
        except RecursionError:
            return error(400, "invalid_argument", f"the body is nested more than {MAX_BODY_DEPTH} levels deep")
        except BadBody as exc:
            return error(400, "invalid_argument", str(exc))
        except json_format.ParseError as exc:
            unknown = UNKNOWN_FIELD.search(str(exc))
            return error(400, "invalid_argument", str(exc), unknown.group(1) if unknown else "")
        return _idempotency_key(message, request, binding)

    async def _data(self, message: Message, request: Request, binding: Binding) -> dict[str, Any] | Response:
        """The request's JSON: its body (a JSON object) or, for a body-less route, its query parameters."""
        if binding.body != "*":
            return {key: _query_value(message, key, value) for key, value in request.query_params.items()}
        try:
            raw = await self.body(request)
        except BadBody as exc:
            return error(413, "resource_exhausted", str(exc), close=True)
        data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        if not isinstance(data, dict):
            return error(400, "invalid_argument", "the body must be a JSON object")
        return data


def _path_into(data: dict[str, Any], message: Message, path_params: dict[str, Any]) -> Response | None:
    """The path's fields into `data`; 400 when the body or query gives one of them a different value."""
    for name, value in path_params.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        if any(data.get(spelling, value) != value for spelling in {name, field.json_name}):
            return error(400, "invalid_argument", f"{name} is given by the path; it cannot differ", name)
        data.pop(field.json_name, None)
        data[name] = value
    return None


def _idempotency_key(message: Message, request: Request, binding: Binding) -> Response | None:
    """SubmitJob's Idempotency-Key header (the standard draft's) as the request's key; 400 if the body differs."""
    key = request.headers.get("idempotency-key")
    if key is not None and binding.rpc.name == "SubmitJob":
        key = key.strip(" \t")
        if message.idempotency_key and message.idempotency_key != key:  # type: ignore[attr-defined]
            return error(400, "invalid_argument", "Idempotency-Key differs from idempotencyKey", "idempotency_key")
        message.idempotency_key = key  # type: ignore[attr-defined]
    return None


def _query_value(message: Message, key: str, value: str) -> Any:
    """A query parameter as its field's JSON value: numbers for integer fields, enum names as given (a short
    status such as `succeeded` is accepted too)."""
    field = next((f for f in message.DESCRIPTOR.fields if key in (f.name, f.json_name)), None)
    if field is None:
        return value
    if field.enum_type is not None and value and not INTEGER.fullmatch(value):
        prefix = "JOB_STATUS_" if field.enum_type.name == "JobStatus" else ""
        name = value.upper()
        return name if name in field.enum_type.values_by_name else prefix + name
    if field.cpp_type in (field.CPPTYPE_INT32, field.CPPTYPE_INT64, field.CPPTYPE_UINT32, field.CPPTYPE_UINT64):
        # ASCII digits only: str.isdigit() takes "²", which int() refuses.
        return int(value) if INTEGER.fullmatch(value) else value
    return value


def rpc_error(exc: grpc.aio.AioRpcError) -> JSONResponse:
    code = exc.code()
    message = exc.details() or code.name
    match = FIELD.match(message)
    return error(HTTP_STATUS.get(code, 500), code.name.lower(), message, match.group(1) if match else "")
