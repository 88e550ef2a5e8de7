"""Shared helpers for the tests against the real stack (JobService clients, tenants, Triton, histories).

Several test modules use this file: add functions, do not change the ones already here.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import itertools
import json
import os
import re
import secrets
import ssl
import time
import unicodedata
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, TypeAlias

import grpc
import httpx
import tritonclient.grpc.aio as triton
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter

from jobstream.connections import job_service_channel
from jobstream.keys_store import KeysDocument, remove_key, store_key, update
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import GenerationParams, Job, JobStatus
from jobstream.v1.job_service_pb2_grpc import JobServiceStub
from jobstream.workflow_io import GenerationParams as StageParams
from jobstream.workflow_io import LocalStageResult
from tests.eventually import eventually
from workers.pipeline.activities.model.triton_vllm import model_inputs

Metadata = tuple[tuple[str, str], ...]
# The generated stub is generic only for type checkers; at run time it is a plain class.
Stub: TypeAlias = "JobServiceStub[grpc.aio.Channel]"
TERMINAL = frozenset({JobStatus.JOB_STATUS_SUCCEEDED, JobStatus.JOB_STATUS_FAILED, JobStatus.JOB_STATUS_CANCELLED})


# -- JobService clients -------------------------------------------------------------------------------


def auth(api_key: str) -> Metadata:
    return (("authorization", f"Bearer {api_key}"),)


@contextlib.asynccontextmanager
async def job_service(settings: Settings) -> AsyncIterator[Stub]:
    """A stub on its own channel; large enough messages for the claim-check tests' multi-MB prompts."""
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    async with job_service_channel(settings, options=options) as channel:
        yield JobServiceStub(channel)


def params(max_tokens: int = 16, seed: int | None = 7, temperature: float | None = 0.8) -> GenerationParams:
    return GenerationParams(max_tokens=max_tokens, seed=seed, temperature=temperature)


async def submit(
    stub: Stub,
    api_key: str,
    prompt: str = "It is a truth universally acknowledged",
    *,
    pipeline: str = "generate",
    max_tokens: int = 16,
    seed: int | None = 7,
    temperature: float | None = 0.8,
    idempotency_key: str = "",
) -> api.SubmitJobResponse:
    request = api.SubmitJobRequest(
        pipeline=pipeline,
        prompt=prompt,
        params=params(max_tokens, seed, temperature),
        idempotency_key=idempotency_key,
    )
    response: api.SubmitJobResponse = await stub.SubmitJob(request, metadata=auth(api_key))
    return response


async def post_upload(http: httpx.AsyncClient, upload: api.CreateUploadResponse, content: bytes) -> httpx.Response:
    """Upload `content` as CreateUpload says: a form POST of its signed fields, then the file."""
    return await http.post(upload.upload_url, data=dict(upload.upload_fields), files={"file": ("input", content)})


async def get_job(stub: Stub, api_key: str, job_id: str) -> Job:
    response: api.GetJobResponse = await stub.GetJob(api.GetJobRequest(job_id=job_id), metadata=auth(api_key))
    return response.job


async def wait_terminal(stub: Stub, api_key: str, job_id: str, timeout_s: float = 90.0) -> Job:
    """Poll GetJob until the job is SUCCEEDED, FAILED or CANCELLED."""
    return await eventually(
        lambda: get_job(stub, api_key, job_id),
        lambda job: job.status in TERMINAL,
        within_s=timeout_s,
        every_s=0.1,
        what=f"job {job_id} terminal",
    )


async def rpc_error(call: Any) -> grpc.aio.AioRpcError:
    """The AioRpcError an awaitable RPC (or a streaming call's first message) fails with."""
    try:
        if hasattr(call, "__aiter__"):
            async for _ in call:
                break
        else:
            await call
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError("the call succeeded; expected an error")


# -- tenants ------------------------------------------------------------------------------------------


def add_api_key(settings: Settings, tenant: str) -> str:
    """Add a new key for `tenant` (any name, even one the service refuses) to the api-keys file, keeping every
    existing key; returns the key. Stored as its digest, as `jobstream keys add` stores one."""
    key = "js_test_" + secrets.token_urlsafe(18)
    store_key(settings, key, tenant)
    return key


@contextlib.contextmanager
def tenant_with_limits(settings: Settings, prefix: str, **limits: int) -> Iterator[tuple[str, str]]:
    """(tenant, key) of a brand-new tenant whose own limits (the keys file's `tenants` section) are `limits`."""
    with tenant_key(settings, prefix) as (tenant, key):

        def limit(document: KeysDocument) -> None:
            document.tenants[tenant] = limits

        def unlimit(document: KeysDocument) -> None:
            document.tenants.pop(tenant, None)

        update(settings, limit)
        try:
            yield tenant, key
        finally:
            update(settings, unlimit)


@contextlib.contextmanager
def tenant_key(settings: Settings, prefix: str = "test") -> Iterator[tuple[str, str]]:
    """(tenant, key) of a brand-new tenant with no jobs; its key is removed again afterwards."""
    tenant = f"{prefix}-{secrets.token_hex(6)}"
    key = add_api_key(settings, tenant)
    try:
        yield tenant, key
    finally:
        remove_key(settings, key)


# -- Triton, called directly ----------------------------------------------------------------------------


def normalise_prompt(prompt: str) -> str:
    """What the preprocess stage hands the model."""
    return " ".join(unicodedata.normalize("NFC", prompt).split())


async def triton_responses(
    settings: Settings, model: str, inputs: list[triton.InferInput], parameters: dict[str, object] | None = None
) -> list[dict[str, Any]]:
    """Every response a decoupled model streams for one request, each as {output name: its first value}."""
    client = triton.InferenceServerClient(settings.triton_grpc_url)

    async def requests() -> AsyncIterator[dict[str, object]]:
        yield {"model_name": model, "inputs": inputs, "parameters": {"token_delay_ms": 0, **(parameters or {})}}

    responses: list[dict[str, Any]] = []
    try:
        async for result, error in client.stream_infer(requests()):
            assert error is None, error
            outputs = {}
            for output in result.get_response().outputs:
                value = result.as_numpy(output.name).reshape(-1)[0]
                outputs[output.name] = value.decode("utf-8") if isinstance(value, bytes) else int(value)
            responses.append(outputs)
    finally:
        await client.close()
    return responses


async def triton_stream(
    settings: Settings, model: str, inputs: list[triton.InferInput], parameters: dict[str, object] | None = None
) -> list[str]:
    """Every token text a decoupled model streams for one request (the vLLM backend's contract)."""
    responses = await triton_responses(settings, model, inputs, parameters)
    return [text for response in responses if (text := response.get("text_output"))]


async def tinylm_tokens(
    settings: Settings, prompt: str, max_tokens: int, seed: int, temperature: float = 0.8
) -> list[str]:
    """tinylm's tokens for an already-normalised prompt, asked for as the model stage asks."""
    params = StageParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
    tokens = await triton_stream(settings, "tinylm", model_inputs(prompt, params, max_tokens))
    assert len(tokens) == max_tokens
    return tokens


async def keywords_tokens(settings: Settings, text: str, max_tokens: int = 64) -> list[str]:
    return await triton_stream(settings, "keywords", model_inputs(text, StageParams(), max_tokens))


# -- Temporal histories ---------------------------------------------------------------------------------


def iter_payloads(message: Message) -> Iterator[Payload]:
    """Every temporalio Payload anywhere inside a protobuf message (fields walked generically)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            entries = value.values()
            if field.message_type.fields_by_name["value"].message_type is None:
                continue
            for entry in entries:
                yield from iter_payloads(entry)
        elif field.is_repeated:
            for item in value:
                yield from iter_payloads(item)
        else:
            yield from iter_payloads(value)


def events_of(history: WorkflowHistory, event_type: int) -> list[HistoryEvent]:
    return [event for event in history.events if event.event_type == event_type]


def activity_names(history: WorkflowHistory) -> dict[int, str]:
    """Scheduled event id -> activity type name."""
    return {
        event.event_id: event.activity_task_scheduled_event_attributes.activity_type.name
        for event in events_of(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    }


def local_stage_markers(history: WorkflowHistory) -> list[tuple[HistoryEvent, dict[str, Any]]]:
    """The markers local CPU stages (run_local_stage) left, with each one's data, in the order they ran: a
    local activity leaves a marker, not activity events."""
    found = []
    for event in events_of(history, EventType.EVENT_TYPE_MARKER_RECORDED):
        details = event.marker_recorded_event_attributes.details
        if "data" in details:
            data: dict[str, Any] = json.loads(details["data"].payloads[0].data)
            if data.get("activity_type") == "run_local_stage":
                found.append((event, data))
    return found


def local_stage_attempts(history: WorkflowHistory) -> list[int]:
    """The attempt each local CPU stage ended at (its marker's data names it)."""
    return [int(data["attempt"]) for _, data in local_stage_markers(history)]


async def local_stage_results(history: WorkflowHistory, converter: DataConverter) -> list[LocalStageResult]:
    """What each local CPU stage that succeeded returned (its marker holds the result)."""
    results = []
    for event, _ in local_stage_markers(history):
        details = event.marker_recorded_event_attributes.details
        if "result" in details:
            results += await converter.decode(details["result"].payloads, [LocalStageResult])
    return results


def activity_starts(history: WorkflowHistory, name: str) -> list[HistoryEvent]:
    """The ActivityTaskStarted events of one activity type (Temporal records one per activity: the last attempt)."""
    names = activity_names(history)
    return [
        event
        for event in events_of(history, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
        if names.get(event.activity_task_started_event_attributes.scheduled_event_id) == name
    ]


async def history_of(client: Client, job_id: str) -> WorkflowHistory:
    return await client.get_workflow_handle(job_id).fetch_history()


# -- Server-Sent Events: a real client (httpx streaming + a small text/event-stream parser) -------------
#
# The parser follows the WHATWG "event stream interpretation" rules: CRLF / CR / LF each end a line, a
# `field: value` line drops one optional space after the colon, `data` lines join with "\n", `id` sets the
# last event id, lines starting with ':' are comments (the bridge's keep-alives), a blank line dispatches.

_SSE_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event; `id` is the event's own `id:` field (None if its block had none)."""

    id: str | None
    event: str
    data: str
    received: float  # time.time() when the chunk holding its dispatching blank line arrived

    @property
    def json(self) -> dict[str, Any]:
        value = json.loads(self.data)
        assert isinstance(value, dict), self.data
        return value


@dataclass(frozen=True)
class SseComment:
    text: str
    received: float


@dataclass
class SseParser:
    """Incremental text/event-stream parser: `feed` bytes as they arrive, get back the dispatched events."""

    comments: list[SseComment] = dataclass_field(default_factory=list)
    last_event_id: str = ""
    _decoder: codecs.IncrementalDecoder = dataclass_field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")()
    )
    _buffer: str = ""
    _started: bool = False
    _data: list[str] = dataclass_field(default_factory=list)
    _event: str = ""
    _id: str | None = None

    def feed(self, chunk: bytes, now: float) -> list[SseEvent]:
        text = self._decoder.decode(chunk)  # incremental: a character split across chunks is kept whole
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")  # one leading BOM is allowed and ignored
        self._buffer += text
        events: list[SseEvent] = []
        while (match := _SSE_LINE_END.search(self._buffer)) is not None:
            if match.group() == "\r" and match.end() == len(self._buffer):
                break  # maybe the first half of a CRLF split across chunks: wait for the next chunk
            line, self._buffer = self._buffer[: match.start()], self._buffer[match.end() :]
            event = self._line(line, now)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str, now: float) -> SseEvent | None:
        if line == "":
            return self._dispatch(now)
        if line.startswith(":"):
            self.comments.append(SseComment(line[1:].removeprefix(" "), now))
            return None
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
            self.last_event_id = value
        # `retry` and unknown fields are ignored, as a browser does.
        return None

    def _dispatch(self, now: float) -> SseEvent | None:
        data, event_type, event_id = self._data, self._event or "message", self._id
        self._data, self._event, self._id = [], "", None
        if not data:
            return None  # a block without data dispatches nothing
        return SseEvent(id=event_id, event=event_type, data="\n".join(data), received=now)


class SseConnection:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.parser = SseParser()

    @property
    def comments(self) -> list[SseComment]:
        return self.parser.comments

    async def events(self) -> AsyncIterator[SseEvent]:
        """Every event until the server ends the stream (an incomplete trailing event is dropped)."""
        async for chunk in self.response.aiter_raw():
            for event in self.parser.feed(chunk, time.time()):
                yield event

    async def collect(self) -> list[SseEvent]:
        """Every event until the server closes the stream (which it must do after a terminal event)."""
        return [event async for event in self.events()]


def sse_client(read_timeout_s: float = 60.0, ca_file: Path | None = None) -> httpx.AsyncClient:
    """A client for long-lived streams: its read timeout is well above the bridge's keep-alive interval.
    `ca_file`: the CA of a TLS front (the cluster's edge)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, read=read_timeout_s),
        limits=httpx.Limits(max_connections=None),
        verify=ssl.create_default_context(cafile=str(ca_file)) if ca_file else True,
    )


@contextlib.asynccontextmanager
async def sse_connect(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[SseConnection]:
    """An open SSE request; leaving the block drops the connection, as a client going away does."""
    request_headers = {"accept": "text/event-stream", "cache-control": "no-cache", **(headers or {})}
    async with client.stream("GET", url, headers=request_headers) as response:
        yield SseConnection(response)


async def read_stream(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None, timeout_s: float = 120.0
) -> list[SseEvent]:
    """Connect, require a 200 `text/event-stream`, and read the stream to its end."""
    async with asyncio.timeout(timeout_s), sse_connect(client, url, headers) as connection:
        if connection.response.status_code != 200:
            body = (await connection.response.aread()).decode(errors="replace")
            raise AssertionError(f"SSE {url}: HTTP {connection.response.status_code}: {body}")
        assert connection.response.headers["content-type"].startswith("text/event-stream")
        return await connection.collect()


def events_url(bridge_url: str, job_id: str, token: str, after: str = "") -> str:
    url = f"{bridge_url}/v1/jobs/{job_id}/events?token={token}"
    return f"{url}&after={after}" if after else url


@dataclass(frozen=True)
class Story:
    text: str  # the model stage's token texts, concatenated in index order
    tokens: int
    result_text: str  # from the terminal job.completed event


def check_story(job_id: str, events: list[SseEvent], stages: list[str], model_stage: str = "generate") -> Story:
    """Assert `events` is the whole story of a successful job, each event exactly once and in order.

    job.started (naming the stages), then per stage started / (the model stage's tokens 0..n-1) / completed,
    then job.completed last; every event has its own id, ids strictly increase, and every data names the job.
    """
    ids = [event.id or "" for event in events]
    assert all(ids), f"an event without an id: {ids}"
    assert all(a < b for a, b in itertools.pairwise(ids)), f"ids not strictly increasing: {ids}"
    for event in events:
        data = event.json
        assert data["job_id"] == job_id, data
        assert data["type"] == event.event, data
    types = [event.event for event in events]
    expected = ["job.started"]
    for _ in stages:
        expected += ["stage.started", "stage.completed"]
    expected.append("job.completed")
    assert [t for t in types if t != "token"] == expected, types
    assert events[0].json["stages"] == stages
    stage_events = [event.json for event in events if event.event.startswith("stage.")]
    assert [s["stage"] for s in stage_events] == [name for name in stages for _ in range(2)]
    tokens = [event.json for event in events if event.event == "token"]
    assert [t["index"] for t in tokens] == list(range(len(tokens))), [t["index"] for t in tokens]
    assert all(t["stage"] == model_stage for t in tokens)
    if tokens:  # the tokens sit together between their own stage's started and completed events
        slot = stages.index(model_stage)
        first = types.index("token")
        started = [i for i, t in enumerate(types) if t == "stage.started"][slot]
        completed = [i for i, t in enumerate(types) if t == "stage.completed"][slot]
        assert started + 1 == first, types
        assert first + len(tokens) == completed, types
    final = events[-1].json
    assert final["tokens_generated"] == len(tokens), final
    text = "".join(t["text"] for t in tokens)
    return Story(text=text, tokens=len(tokens), result_text=str(final.get("result_text", "")))


# -- processes of the running stack, for fault injection -------------------------------------------------
#
# `jobstream up` appends "name pid" to STATE_DIR/run/children.pids on every (re)start of a child, so the
# last line per name is the live process; it restarts a dead child with backoff (1 s, doubling).


def current_pid(settings: Settings, name: str) -> int:
    """The pid the supervisor started last for `name` (e.g. kafka, triton, job-service, cpu-worker)."""
    pids: dict[str, int] = {}
    for line in (settings.state_dir / "run" / "children.pids").read_text().splitlines():
        role, _, pid = line.partition(" ")
        if pid.strip().isdigit():
            pids[role] = int(pid)
    return pids[name]


def process_alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


def _probe(settings: Settings, name: str) -> Any:
    # The supervisor's own readiness probes, so "back" means what it means to `jobstream up`.
    from devstack import stack as devstack_stack

    probes = {
        "temporal": devstack_stack.temporal_ok(settings),
        "kafka": devstack_stack.kafka_ok(settings),
        "minio": devstack_stack.http_ok(f"http://{settings.minio_endpoint}/minio/health/live"),
        "triton": devstack_stack.http_ok(f"http://{settings.host}:{settings.triton_http_port}/v2/health/ready"),
        "job-service": devstack_stack.grpc_serving(settings),
        "sse-bridge": devstack_stack.http_ok(f"{settings.local_bridge_url}/healthz", settings.server_ca_file),
    }
    return probes.get(name) or devstack_stack.file_ready(name, settings)


async def process_ready(settings: Settings, name: str, pid: int) -> bool:
    try:
        return bool(await _probe(settings, name)(pid))
    except Exception:
        return False


def kill_process(settings: Settings, name: str, sig: int = 9, group: bool = False) -> int:
    """Send `sig` (SIGKILL unless told) to the live process `name`, or with `group` to its whole process
    group (a server and the helpers it forked, as when its container dies); returns its pid."""
    pid = current_pid(settings, name)
    assert process_alive(pid), f"{name} (pid {pid}) is not running"
    if group:
        os.killpg(pid, sig)  # the supervisor starts each child in its own session: pgid == pid
    else:
        os.kill(pid, sig)
    return pid


async def wait_restarted(settings: Settings, name: str, old_pid: int, timeout_s: float = 240.0) -> int:
    """The supervisor's replacement for a killed process: a new pid, alive and passing its readiness probe."""
    async with asyncio.timeout(timeout_s):
        while True:
            pid = current_pid(settings, name)
            if pid != old_pid and process_alive(pid) and await process_ready(settings, name, pid):
                return pid
            await asyncio.sleep(0.3)


# -- an EventSource-like client: reconnects with Last-Event-ID until the story ends ------------------------

TERMINAL_EVENTS = frozenset({"job.completed", "job.failed", "job.cancelled"})


@dataclass
class Followed:
    events: list[SseEvent]
    connections: int  # 1 when the stream never broke
    statuses: tuple[int, ...] = ()  # each connection's HTTP status, in order
    received: list[float] = dataclass_field(default_factory=list)  # time.monotonic() of each event

    @property
    def longest_pause_s(self) -> float:
        """The longest wait between two events (or before the first): how long a fault stalled this client."""
        return max((b - a for a, b in itertools.pairwise(self.received)), default=0.0)


async def follow_reconnecting(
    client: httpx.AsyncClient,
    url: str,
    on_event: Any = None,
    timeout_s: float = 240.0,
    retry_s: float = 0.5,
) -> Followed:
    """Read a job's stream to its terminal event as a browser's EventSource does: when the connection drops
    (or the bridge is away, or answers 502/503/504) wait `retry_s` and reconnect with `Last-Event-ID`.

    Events are returned as received, never deduplicated here: exactly-once is the server's job.
    `on_event(event)` (sync or async) runs after each event is recorded.
    """
    parser_last = ""
    events: list[SseEvent] = []
    received: list[float] = []
    connections = 0
    statuses: list[int] = []
    async with asyncio.timeout(timeout_s):
        while True:
            headers = {"last-event-id": parser_last} if parser_last else {}
            try:
                async with sse_connect(client, url, headers) as connection:
                    connections += 1
                    status = connection.response.status_code
                    statuses.append(status)
                    if status in (502, 503, 504):
                        await connection.response.aread()
                    elif status != 200:
                        body = (await connection.response.aread()).decode(errors="replace")
                        raise AssertionError(f"SSE {url}: HTTP {status}: {body}")
                    else:
                        async for event in connection.events():
                            events.append(event)
                            received.append(time.monotonic())
                            parser_last = connection.parser.last_event_id or parser_last
                            if on_event is not None:
                                result = on_event(event)
                                if asyncio.iscoroutine(result):
                                    await result
                            if event.event in TERMINAL_EVENTS:
                                return Followed(events, connections, tuple(statuses), received)
            except httpx.TransportError:
                pass  # refused, reset or cut off mid-body: the bridge went away
            await asyncio.sleep(retry_s)


# -- what a client received, measured before it is asserted -------------------------------------------------


@dataclass(frozen=True)
class StreamAudit:
    events: int  # events received
    lost: int  # expected events never received
    duplicated: int  # receptions of an event id already received
    misrouted: int  # events naming another job, or out of story order


def expected_ids(stage_count: int, model_slot: int, tokens: int) -> list[str]:
    """The ids of a successful job's whole story, in order (one model stage at `model_slot`, 0-based)."""
    from jobstream import cursors

    ids = [cursors.job_started()]
    for stage in range(stage_count):
        ids.append(cursors.stage_started(stage))
        if stage == model_slot:
            ids += [cursors.token(stage, index) for index in range(tokens)]
        ids.append(cursors.stage_completed(stage))
    return [*ids, cursors.terminal()]


def audit_stream(job_id: str, events: list[SseEvent], expected: list[str]) -> StreamAudit:
    """Compare a received stream with the expected ids; measured, not asserted, so the report can say it."""
    ids = [event.id or "" for event in events]
    seen: set[str] = set()
    duplicated = 0
    for event_id in ids:
        duplicated += event_id in seen
        seen.add(event_id)
    misrouted = 0
    for event in events:
        with contextlib.suppress(ValueError, AssertionError):
            if event.json.get("job_id") != job_id:
                misrouted += 1
    misrouted += sum(1 for a, b in itertools.pairwise(ids) if a >= b and a != b)
    return StreamAudit(
        events=len(events),
        lost=len(set(expected) - seen),
        duplicated=duplicated,
        misrouted=misrouted,
    )


def add_audit(record: Any, audit: StreamAudit) -> None:
    """Count one checked stream into a reliability record (devstack.reliability.Record)."""
    record.events += audit.events
    record.lost += audit.lost
    record.duplicated += audit.duplicated
    record.misrouted += audit.misrouted


TRITON_STREAM_LINE = re.compile(r"stream '(?P<request>[^']+)' (?P<what>start|cancelled after|done)")


def triton_streams(settings: Settings, job_id: str) -> dict[str, str]:
    """Each model stream Triton started for this job (by request id) -> how it ended as far as Triton's log
    says: "start" (still running), "cancelled after" or "done"."""
    streams: dict[str, str] = {}
    for match in TRITON_STREAM_LINE.finditer((settings.logs_dir / "triton.log").read_text(errors="replace")):
        if match["request"].startswith(f"{job_id}/"):
            streams[match["request"]] = match["what"]
    return streams


async def triton_log_match(settings: Settings, job_id: str, pattern: str, timeout_s: float = 10.0) -> re.Match[str]:
    """The first line of Triton's log about this job's model stream that matches `pattern`."""
    log = settings.logs_dir / "triton.log"
    regex = re.compile(rf"stream '{job_id}/[^']*' {pattern}")
    match = await eventually(
        lambda: regex.search(log.read_text(errors="replace")), within_s=timeout_s, every_s=0.2, what=regex.pattern
    )
    assert match is not None
    return match
