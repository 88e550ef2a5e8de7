"""What the OpenAI-compatible endpoints share: the caller's key, the body, the JobService calls, and a job's
story from its first event (the fan-out's replay joined to its live tail)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHistoryEventFilterType
from temporalio.service import RPCError

from jobstream.auth import Caller as AuthCaller
from jobstream.auth import bearer_key, caller_of
from jobstream.event_hub import EventHub
from jobstream.event_types import TERMINAL_TYPES
from jobstream.keys_store import KeysFileError
from jobstream.pipelines import Pipelines, load_pipelines
from jobstream.settings import get_settings
from jobstream.stream_tokens import StreamGrant
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.event_pb2 import JobEvent
from jobstream.v1.job_pb2 import Job
from sse_bridge.admission import Admission, Refusal, Ticket
from sse_bridge.http_api import CALL_TIMEOUT_S, BadBody, HttpApi, check_shape
from sse_bridge.openai_api import ids
from sse_bridge.openai_api.create_request import BadParam, Body, Message, Sampling, parsed, pipeline_of, submit_request
from sse_bridge.openai_api.errors import from_rpc, invalid, not_found, openai_error, refused_param
from sse_bridge.streams import EventSourceResponse, Streams

log = logging.getLogger(__name__)
Reply = TypeVar("Reply")
# How long a terminal event waits for its job's workflow to close (it closes a workflow task after publishing it).
CLOSE_WAIT_S = 10.0
# The JobService's field names, as the OpenAI request calls them.
PARAMS = {
    "pipeline": "model",
    "prompt": "input",
    "params.max_tokens": "max_output_tokens",
    "params.temperature": "temperature",
    "params.top_p": "top_p",
    "params.seed": "seed",
    "params.stop": "stop",
    "metadata": "metadata",
}


@dataclass(frozen=True)
class Caller:
    authorization: str  # the header as sent, passed on to the JobService, which checks it again
    key: AuthCaller  # the tenant, the key's public id, the keys file as read for this call

    @property
    def tenant(self) -> str:
        return self.key.tenant


class Surface:
    def __init__(
        self,
        api: HttpApi,
        hub: EventHub,
        streams: Streams,
        admission: Admission,
        temporal: Client,
        pipelines: Pipelines | None = None,
    ) -> None:
        self.api = api
        self.admission = admission
        self.temporal = temporal
        self.hub = hub
        self.streams = streams
        self.pipelines = pipelines or load_pipelines()

    def served(self) -> set[str]:
        return get_settings().served_models

    def caller(self, request: Request) -> Caller | JSONResponse:
        authorization = request.headers.get("authorization", "").strip(" \t")
        try:
            found = caller_of(self.api.read_keys(), bearer_key(authorization))
        except KeysFileError:
            return openai_error(503, "The API keys cannot be read; retry shortly.", kind="server_error")
        if found is None:
            message = "Incorrect API key provided: send 'Authorization: Bearer <api key>' with a valid key."
            return openai_error(401, message, kind="invalid_request_error", code="invalid_api_key")
        return Caller(authorization, found)

    async def body(self, request: Request, kind: type[Body]) -> Body | JSONResponse:
        try:
            data = json.loads(await self.api.body(request))
            check_shape(data)
        except BadBody as exc:
            return invalid(str(exc))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return invalid("The body is not valid JSON.")
        if not isinstance(data, dict):
            return invalid("The body must be a JSON object.")
        try:
            return parsed(kind, data)
        except BadParam as exc:
            return refused_param(exc.param, str(exc), exc.code)

    async def _call(
        self,
        caller: Caller,
        rpc: Callable[..., Awaitable[Reply]],
        request: object,
        fields: dict[str, str] | None = None,
    ) -> Reply | JSONResponse:
        """A JobService RPC with the caller's key; a refusal in OpenAI's shape (`fields`: its names for ours)."""
        try:
            return await rpc(request, metadata=[("authorization", caller.authorization)], timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            return from_rpc(exc, fields)

    async def submit(self, caller: Caller, request: api.SubmitJobRequest) -> api.SubmitJobResponse | JSONResponse:
        return await self._call(caller, self.api.stub.SubmitJob, request, PARAMS)

    async def job(self, caller: Caller, job_id: str) -> Job | JSONResponse:
        reply = await self._call(caller, self.api.stub.GetJob, api.GetJobRequest(job_id=job_id))
        return reply if isinstance(reply, JSONResponse) else reply.job

    async def cancel(self, caller: Caller, job_id: str) -> Job | JSONResponse:
        request = api.CancelJobRequest(job_id=job_id, reason="cancelled through the OpenAI-compatible API")
        reply = await self._call(caller, self.api.stub.CancelJob, request)
        return reply if isinstance(reply, JSONResponse) else reply.job

    def job_request(
        self, request: Request, model: str, messages: list[Message], sampling: Sampling, max_tokens: int | None
    ) -> api.SubmitJobRequest | JSONResponse:
        """The job a create request asks for: its model's pipeline, the messages through the model's chat template,
        the sampling, the budget and the request's Idempotency-Key; or the parameter refused."""
        try:
            pipeline = pipeline_of(model, self.pipelines, self.served())
            template = self.pipelines.chat_template(self.pipelines.model_stages(pipeline)[0])
            key = request.headers.get("idempotency-key", "").strip(" \t")
            return submit_request(pipeline, messages, template, sampling, max_tokens, key, sampling.metadata)
        except BadParam as exc:
            return refused_param(exc.param, str(exc), exc.code)

    async def owned(self, request: Request, path_param: str, prefix: str, what: str) -> tuple[Caller, Job] | Response:
        """The caller and the job behind the id in the path (`resp_...`, `chatcmpl-...`); 404 when it is not
        theirs or not one of ours."""
        caller = self.caller(request)
        if isinstance(caller, Response):
            return caller
        ident = request.path_params[path_param]
        job_id = ids.job_of(ident, prefix)
        if job_id is None:
            return not_found(what, ident[:64])
        job = await self.job(caller, job_id)
        if isinstance(job, Response):
            return not_found(what, ident[:64]) if job.status_code == 404 else job
        return caller, job

    def admit(self, caller: Caller) -> Ticket | JSONResponse:
        """A place for one more stream under the tenant's stream limits, as every stream of the bridge takes one;
        asked before the job is submitted, so that a refusal (which the SDKs retry) leaves no job behind."""
        grant = StreamGrant("", caller.tenant, caller.key.key_id)
        try:
            return self.admission.admit(grant, f"{caller.authorization}\0{uuid.uuid4()}", caller.key.keys_file)
        except Refusal as refused:
            return openai_error(refused.status, refused.message, kind="rate_limit_error", code=refused.code)
        except KeysFileError:
            return openai_error(503, "The tenants' limits cannot be read; retry shortly.", kind="server_error")

    async def holding(self, caller: Caller, run: Callable[[], Awaitable[Response]]) -> Response:
        """`run()` holding a place under the tenant's stream limits: it watches a job's story as a stream does."""
        ticket = self.admit(caller)
        if isinstance(ticket, Response):
            return ticket
        try:
            return await run()
        finally:
            ticket.release()

    def stream(self, ticket: Ticket, frames: AsyncGenerator[bytes]) -> Response:
        """`frames` as the admitted stream; it ends when the caller's key is revoked."""
        return EventSourceResponse(frames, self.streams, on_close=ticket.release, until=ticket.revoked)

    async def story(self, job_id: str, tenant: str) -> AsyncGenerator[JobEvent]:
        """The job's events from its first, live until its terminal one (the caller checked the job is theirs).
        Callers close it (contextlib.aclosing), which leaves the hub's watchers at once."""
        async with contextlib.aclosing(self.hub.watch(job_id, "", owner=tenant)) as events:
            async for event in events:
                yield event
                if event.type in TERMINAL_TYPES:
                    return

    async def forget(self, job_id: str) -> None:
        """Deletes an ended job's workflow and its history. Temporal deletes in the background (about 20 s on the
        development server): GET answers 404 once it has. Its events stay on the topic until its retention."""
        await self.temporal.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=self.temporal.namespace, workflow_execution=WorkflowExecution(workflow_id=job_id)
            )
        )

    async def closed(self, job_id: str) -> None:
        """Returns once the job's workflow has closed. A job publishes its terminal event a moment before its
        workflow closes, and until then GetJob still says RUNNING: a response's terminal event waits for the
        close, so that a client retrieving the response after it reads it ended, as OpenAI's clients expect."""
        handle = self.temporal.get_workflow_handle(job_id)
        try:
            async with asyncio.timeout(CLOSE_WAIT_S):
                async for _ in handle.fetch_history_events(
                    wait_new_event=True, event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
                ):
                    return
        except TimeoutError:
            log.warning("job %s: its terminal event is out, its workflow still open after %s s", job_id, CLOSE_WAIT_S)
        except RPCError as exc:  # best effort: Temporal away, or the job deleted meanwhile
            log.warning("job %s: could not wait for its workflow to close: %s", job_id, exc)
