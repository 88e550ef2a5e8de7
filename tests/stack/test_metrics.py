"""Every process's Prometheus endpoint, scraped before and after a known workload on the real stack: the
counters moved by exactly what the workload did. Parsed with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from devstack.stack import gpu_worker_metrics_ports
from jobstream.settings import PROJECT_ROOT, Settings
from jobstream.v1.job_pb2 import JobStatus
from jobstream.workflow_io import JOB_WORKFLOWS
from tests.stack.job_service_client import Stub, job_service, submit, wait_terminal
from tests.stack.sse_client import follow_reconnecting, sse_client

TOKENS = 12
# Per job: job.started, three stages' started and completed, the tokens, the terminal event.
EVENTS = 1 + 3 * 2 + TOKENS + 1

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
async def stub(stack: Settings) -> AsyncIterator[Stub]:
    async with job_service(stack) as client:
        yield client


def endpoints(stack: Settings) -> dict[str, str]:
    tinylm = gpu_worker_metrics_ports(stack)["tinylm"]
    return {
        "job-service": f"http://{stack.host}:{stack.metrics_port}/metrics",
        "cpu-worker": f"http://{stack.host}:{stack.cpu_worker_metrics_port}/metrics",
        "gpu-worker-tinylm": f"http://{stack.host}:{tinylm}/metrics",
        "sse-bridge": f"http://{stack.host}:{stack.bridge_metrics_port}/metrics",
    }


async def scrape(stack: Settings) -> dict[str, Samples]:
    scraped: dict[str, Samples] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        for name, url in endpoints(stack).items():
            reply = await http.get(url)
            assert reply.status_code == 200, (name, reply.status_code)
            assert reply.headers["content-type"].startswith("text/plain"), (name, reply.headers)
            scraped[name] = {
                (sample.name, frozenset(sample.labels.items())): sample.value
                for family in text_string_to_metric_families(reply.text)
                for sample in family.samples
            }
    return scraped


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there is none yet)."""
    wanted = set(labels.items())
    return sum(v for (sample, got), v in samples.items() if sample == name and wanted <= got)


def moved(before: dict[str, Samples], after: dict[str, Samples], process: str, name: str, **labels: str) -> float:
    return value(after[process], name, **labels) - value(before[process], name, **labels)


async def idle(client: Client) -> None:
    """No job running: what earlier tests left must not move the counters of this one."""
    query = f"{JOB_WORKFLOWS} AND ExecutionStatus = 'Running'"
    async with asyncio.timeout(120):
        while True:
            if not (await client.count_workflows(query)).count:
                return
            await asyncio.sleep(0.25)


async def test_every_endpoint_counts_one_job(
    stub: Stub, api_key: str, stack: Settings, temporal_client: Client
) -> None:
    await idle(temporal_client)
    before = await scrape(stack)
    reply = await submit(stub, api_key, pipeline="generate", max_tokens=TOKENS)
    async with sse_client() as client:
        followed = await follow_reconnecting(client, reply.events_url)
    job = await wait_terminal(stub, api_key, reply.job_id)
    assert job.status == JobStatus.JOB_STATUS_SUCCEEDED
    await idle(temporal_client)
    after = await scrape(stack)
    assert len(followed.events) == EVENTS

    service = "jobstream.v1.JobService"
    handled = "jobstream_grpc_server_handled_total"
    assert moved(before, after, "job-service", handled, grpc_method="SubmitJob", grpc_code="OK") == 1
    latency = "jobstream_grpc_server_handling_seconds_count"
    assert moved(before, after, "job-service", latency, grpc_service=service, grpc_method="SubmitJob") == 1

    assert moved(before, after, "cpu-worker", "jobstream_jobs_started_total", pipeline="generate") == 1
    finished = "jobstream_jobs_finished_total"
    assert moved(before, after, "cpu-worker", finished, pipeline="generate", status="succeeded") == 1
    # The SDK's own: its three workflow tasks, two local stages, and the activity that publishes its end.
    workflow_tasks = "temporal_workflow_task_execution_latency_seconds_count"
    assert moved(before, after, "cpu-worker", workflow_tasks, workflow_type="PipelineWorkflowV2") == 3
    local = "temporal_local_activity_execution_latency_seconds_count"
    assert moved(before, after, "cpu-worker", local, activity_type="run_local_stage") == 2
    ended = "temporal_activity_execution_latency_seconds_count"
    assert moved(before, after, "cpu-worker", ended, activity_type="publish_events") == 1

    gpu = "gpu-worker-tinylm"
    assert moved(before, after, gpu, "jobstream_tokens_generated_total", model="tinylm") == TOKENS
    attempts = "jobstream_model_attempts_total"
    assert moved(before, after, gpu, attempts, model="tinylm", outcome="succeeded", retry="false") == 1
    assert moved(before, after, gpu, "jobstream_time_to_first_token_seconds_count", model="tinylm") == 1
    # One gap between each two of the attempt's tokens; every token's produce acknowledged once.
    assert moved(before, after, gpu, "jobstream_inter_token_seconds_count", model="tinylm") == TOKENS - 1
    assert moved(before, after, gpu, "jobstream_kafka_produce_seconds_count", model="tinylm") == TOKENS
    assert (
        moved(before, after, gpu, "temporal_activity_execution_latency_seconds_count", activity_type="run_model") == 1
    )

    bridge = "sse-bridge"
    assert moved(before, after, bridge, "jobstream_sse_events_delivered_total") == EVENTS
    writes = moved(before, after, bridge, "jobstream_sse_writes_total")
    assert 1 <= writes <= EVENTS
    # Observed per write that begins with a live event (the tail's): a write of replayed events is not.
    lagged = moved(before, after, bridge, "jobstream_sse_delivery_lag_seconds_count")
    replayed = moved(before, after, bridge, "jobstream_sse_replayed_events_total")
    assert writes - replayed <= lagged <= writes
    assert lagged >= 1
    assert moved(before, after, bridge, "jobstream_sse_tail_delay_seconds_count") == lagged
    assert value(after[bridge], "jobstream_sse_open_streams") == 0
    # Connected right after SubmitJob: what the job published before (its local preprocess runs in
    # milliseconds) is replayed from the log, the rest comes from the tail.
    assert moved(before, after, bridge, "jobstream_sse_replays_total") <= 1
    assert moved(before, after, bridge, "jobstream_sse_replayed_events_total") < TOKENS
    # The Kafka tail's lag is there for every partition of the topic, and it has caught up.
    lags = [v for (name, _), v in after[bridge].items() if name == "jobstream_sse_tail_lag_records"]
    assert len(lags) == stack.events_partitions
    assert max(lags) <= 1


async def test_a_retried_model_stage_counts_its_failure_and_its_retry(
    stub: Stub, api_key: str, stack: Settings, temporal_client: Client
) -> None:
    await idle(temporal_client)
    before = await scrape(stack)
    reply = await submit(stub, api_key, pipeline="drill-oom-once", max_tokens=TOKENS)
    job = await wait_terminal(stub, api_key, reply.job_id)
    assert job.status == JobStatus.JOB_STATUS_SUCCEEDED
    await idle(temporal_client)
    after = await scrape(stack)

    gpu = "gpu-worker-tinylm"
    attempts = "jobstream_model_attempts_total"
    failed = moved(before, after, gpu, attempts, outcome="failed", error_type="GpuOutOfMemory", retry="false")
    assert failed == 1
    assert moved(before, after, gpu, attempts, outcome="succeeded", retry="true") == 1
    # Every token once: the retry continued after the 5 its predecessor delivered.
    assert moved(before, after, gpu, "jobstream_tokens_generated_total", model="tinylm") == TOKENS


async def test_a_stream_opened_after_the_job_counts_its_replay(
    stub: Stub, api_key: str, stack: Settings, temporal_client: Client
) -> None:
    reply = await submit(stub, api_key, pipeline="generate", max_tokens=TOKENS)
    await wait_terminal(stub, api_key, reply.job_id)
    await idle(temporal_client)
    before = await scrape(stack)
    async with sse_client() as client:
        followed = await follow_reconnecting(client, reply.events_url)
    after = await scrape(stack)
    assert len(followed.events) == EVENTS
    assert moved(before, after, "sse-bridge", "jobstream_sse_replays_total") == 1
    assert moved(before, after, "sse-bridge", "jobstream_sse_replayed_events_total") == EVENTS


# The alert rules that docker-compose's Prometheus loads and the Helm chart renders as a PrometheusRule.
ALERTS = PROJECT_ROOT / "deploy" / "helm" / "jobstream" / "files" / "alerts.yaml"
# A metric name in PromQL: an identifier followed by a label matcher or a range, or alone before a comparison.
METRIC = re.compile(r"\b((?:jobstream|temporal)_[a-z0-9_]+)\b")


def alert_metrics() -> dict[str, set[str]]:
    """Each alert's metric names (Prometheus's own `up` aside: no process exports it)."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"]: set(METRIC.findall(rule["expr"])) for group in groups for rule in group["rules"]}


def test_every_alert_names_metrics() -> None:
    named = alert_metrics()
    assert {"JobstreamJobsFailing", "JobstreamProcessDown", "JobstreamGpuQueueBackedUp"} <= set(named)
    assert all(metrics for alert, metrics in named.items() if alert != "JobstreamProcessDown"), named


async def test_every_metric_an_alert_names_is_scraped(
    stub: Stub, api_key: str, stack: Settings, temporal_client: Client
) -> None:
    """A renamed metric would silently disable its alert: each must be in a live scrape after a job ran."""
    reply = await submit(stub, api_key, pipeline="generate", max_tokens=TOKENS)
    async with sse_client() as client:
        await follow_reconnecting(client, reply.events_url)
    await wait_terminal(stub, api_key, reply.job_id)
    await idle(temporal_client)
    scraped = {name for samples in (await scrape(stack)).values() for name, _ in samples}
    missing = {alert: metrics - scraped for alert, metrics in alert_metrics().items() if metrics - scraped}
    assert not missing, f"alerts naming metrics no process exports: {missing}"
