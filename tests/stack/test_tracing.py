"""One job is one trace, and its log lines name it: a set of jobstream's processes with traces on (and JSON
logs) runs beside the stack in a namespace of its own, exporting to an OTLP/HTTP receiver in this test."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devstack.service_set import service_set
from jobstream.logs import JOB_ID_ATTRIBUTE
from jobstream.settings import Settings
from jobstream.v1.job_pb2 import JobStatus
from tests.stack.job_service_client import job_service, submit, wait_terminal
from tests.stack.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.stack.sse_client import read_stream, sse_client

NAMESPACE = "jobstream-traces"
PORT_BASE = 18_300
TOKENS = 10
SERVICES = {"jobstream-job-service", "jobstream-cpu-worker", "jobstream-gpu-worker-tinylm", "jobstream-sse-bridge"}
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # OTLP's SpanKind numbers


@pytest.fixture(scope="module")
async def traced(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Settings, OtlpReceiver]]:
    with OtlpReceiver() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "JOBSTREAM_LOG_FORMAT": "json",
        }
        state_dir = tmp_path_factory.mktemp("traced")
        async with service_set(stack, NAMESPACE, state_dir, PORT_BASE, env, models=["tinylm"]) as services:
            yield services.settings, receiver


async def submit_span(receiver: OtlpReceiver, job_id: str) -> ReceivedSpan:
    """The JobService's span of the SubmitJob call that made the job (the trace's root)."""
    async with asyncio.timeout(30):
        while True:
            for span in list(receiver.spans):
                if span.attributes.get(JOB_ID_ATTRIBUTE) == job_id and span.kind == SERVER:
                    return span
            await asyncio.sleep(0.2)


async def whole_trace(receiver: OtlpReceiver, job_id: str) -> list[ReceivedSpan]:
    """The job's trace once every process has exported its part: each exports in its own batches, so the
    bridge's job-end span may arrive before the span of the activity it hangs from. Given 30 s, after which
    the trace is returned as it is (and the test says what is missing)."""
    trace_id = (await submit_span(receiver, job_id)).trace_id
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):
            while True:
                spans = receiver.trace(trace_id)
                ids = {span.span_id for span in spans}
                ended = any(span.name == "sse.deliver job end" for span in spans)
                if ended and all(span.parent_span_id in ids for span in spans if span.parent_span_id):
                    break
                await asyncio.sleep(0.2)
    return receiver.trace(trace_id)


def one(spans: list[ReceivedSpan], name: str, service: str) -> ReceivedSpan:
    found = [span for span in spans if span.name == name and span.service == service]
    assert len(found) == 1, (name, service, [(s.service, s.name) for s in spans])
    return found[0]


async def test_one_job_is_one_trace_across_every_process(traced: tuple[Settings, OtlpReceiver], api_key: str) -> None:
    settings, receiver = traced
    async with job_service(settings) as stub:
        reply = await submit(stub, api_key, max_tokens=TOKENS)
        async with sse_client() as client:
            events = await read_stream(client, reply.events_url)
        job = await wait_terminal(stub, api_key, reply.job_id)
    assert job.status == JobStatus.JOB_STATUS_SUCCEEDED
    assert sum(event.event == "token" for event in events) == TOKENS

    spans = await whole_trace(receiver, reply.job_id)
    assert {span.service for span in spans} == SERVICES
    by_id = {span.span_id: span for span in spans}
    roots = [span for span in spans if not span.parent_span_id]
    assert [(root.service, root.name) for root in roots] == [
        ("jobstream-job-service", "/jobstream.v1.JobService/SubmitJob")
    ]
    assert all(span.parent_span_id in by_id for span in spans if span.parent_span_id), "a span's parent is missing"

    def parent(span: ReceivedSpan) -> ReceivedSpan:
        return by_id[span.parent_span_id]

    # SubmitJob → StartWorkflow → the model stage's activity → the Triton call → the first token's produce →
    # the bridge's delivery of it. (Temporal's TracingInterceptor hangs the workflow's own spans, RunWorkflow
    # and each StartActivity, side by side from StartWorkflow.)
    first_token = one(spans, "sse.deliver first token", "jobstream-sse-bridge")
    assert first_token.kind == CONSUMER
    produce = parent(first_token)
    assert (produce.service, produce.name, produce.kind) == ("jobstream-gpu-worker-tinylm", "kafka.produce", PRODUCER)
    call = parent(produce)
    assert (call.name, call.kind) == ("triton.stream_infer", CLIENT)
    run_model = parent(call)
    assert (run_model.service, run_model.name) == ("jobstream-gpu-worker-tinylm", "RunActivity:run_model")
    start_model = parent(run_model)
    assert (start_model.service, start_model.name) == ("jobstream-cpu-worker", "StartActivity:run_model")
    start_workflow = parent(start_model)
    assert start_workflow.service == "jobstream-job-service"
    assert start_workflow.name == "StartWorkflow:PipelineWorkflowV2"
    assert parent(start_workflow) == roots[0]
    run_workflow = one(spans, "RunWorkflow:PipelineWorkflowV2", "jobstream-cpu-worker")
    assert parent(run_workflow) == start_workflow

    # job.completed goes out on the activity the verdict's workflow task scheduled: the bridge's job-end span
    # hangs from that activity.
    job_end = one(spans, "sse.deliver job end", "jobstream-sse-bridge")
    assert job_end.attributes["jobstream.event_id"] == events[-1].id
    publish = parent(job_end)
    assert (publish.service, publish.name) == ("jobstream-cpu-worker", "RunActivity:publish_events")
    assert parent(parent(publish)) == start_workflow
    # Not a span per event: the stream's tokens add none beyond the first's produce and delivery.
    assert len(spans) < 20, [(s.service, s.name) for s in spans]


async def test_log_lines_about_a_job_carry_its_id_and_trace(
    traced: tuple[Settings, OtlpReceiver], api_key: str
) -> None:
    settings, receiver = traced
    async with job_service(settings) as stub:
        reply = await submit(stub, api_key, max_tokens=TOKENS)
        await wait_terminal(stub, api_key, reply.job_id)
    trace_id = (await submit_span(receiver, reply.job_id)).trace_id
    log = Path(settings.logs_dir / "gpu-worker-tinylm.log")
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    about = [line for line in lines if line.get("job_id") == reply.job_id]
    assert about, f"no JSON log line names {reply.job_id}"
    for line in about:
        assert line["service"] == "gpu-worker-tinylm"
        assert {"time", "level", "logger", "message"} <= line.keys()
        assert line["trace_id"] == trace_id
