"""The JobService over HTTP/JSON on the bridge, against the real stack: 202 and Location, idempotency, errors
as JSON naming the field, CORS for the local stack's loopback origins, and SSE that browsers get right."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from jobstream import cursors
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from tests.eventually import eventually
from tests.stack.job_service_client import Stub, auth, job_service
from tests.stack.sse_client import read_stream, sse_client

PROMPT = "It is a truth universally acknowledged"


@pytest.fixture
async def http(stack: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.bridge_url, timeout=30) as client:
        yield client


TERMINAL = ("JOB_STATUS_SUCCEEDED", "JOB_STATUS_FAILED", "JOB_STATUS_CANCELLED")


def bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def finished(http: httpx.AsyncClient, api_key: str, location: str) -> dict[str, Any]:
    async def job() -> dict[str, Any]:
        reply = await http.get(location, headers=bearer(api_key))
        assert reply.status_code == 200, reply.text
        found: dict[str, Any] = reply.json()["job"]
        return found

    return await eventually(job, lambda job: job["status"] in TERMINAL, within_s=60, every_s=0.2, what="the job ended")


def refused(reply: httpx.Response, status: int, code: str, field: str | None = None) -> None:
    assert reply.status_code == status, (reply.status_code, reply.text)
    assert reply.headers["content-type"].startswith("application/json")
    error = reply.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    if field is not None:
        assert error.get("field") == field, error


async def test_post_answers_202_with_a_location_that_leads_to_the_result(
    http: httpx.AsyncClient, api_key: str, stack: Settings
) -> None:
    body = {"prompt": PROMPT, "params": {"maxTokens": 12, "seed": 5}}
    reply = await http.post("/v1/jobs", json=body, headers=bearer(api_key))
    assert reply.status_code == 202, reply.text
    submitted = reply.json()
    assert set(submitted) == {"jobId", "status", "eventsUrl", "streamToken"}
    assert reply.headers["location"] == f"/v1/jobs/{submitted['jobId']}"
    assert submitted["status"] == "JOB_STATUS_QUEUED"
    job = await finished(http, api_key, reply.headers["location"])
    assert job["status"] == "JOB_STATUS_SUCCEEDED", job
    assert job["tokensGenerated"] == 12
    assert job["usage"]["outputTokens"] == 12
    # The events URL it gave streams exactly the result.
    async with sse_client() as client:
        events = await read_stream(client, submitted["eventsUrl"])
    assert "".join(e.json["text"] for e in events if e.event == "token") == job["resultText"]
    # The same job over gRPC: one implementation behind both.
    async with job_service(stack) as stub:
        grpc_job = (await stub.GetJob(api.GetJobRequest(job_id=submitted["jobId"]), metadata=auth(api_key))).job
    assert grpc_job.result_text == job["resultText"]


async def test_snake_case_input_list_cancel_and_upload(http: httpx.AsyncClient, api_key: str) -> None:
    body = {"prompt": PROMPT, "pipeline": "drill-slow", "params": {"max_tokens": 200}}
    reply = await http.post("/v1/jobs", json=body, headers=bearer(api_key))
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["jobId"]
    cancel = await http.post(f"/v1/jobs/{job_id}:cancel", json={"reason": "over HTTP"}, headers=bearer(api_key))
    assert cancel.status_code == 200, cancel.text
    job = await finished(http, api_key, f"/v1/jobs/{job_id}")
    assert (job["status"], job["cancelReason"]) == ("JOB_STATUS_CANCELLED", "over HTTP")
    listed = await http.get("/v1/jobs", params={"status": "cancelled", "pageSize": 50}, headers=bearer(api_key))
    assert listed.status_code == 200, listed.text
    assert job_id in [j["jobId"] for j in listed.json()["jobs"]]
    assert {j["status"] for j in listed.json()["jobs"]} == {"JOB_STATUS_CANCELLED"}
    upload = await http.post("/v1/uploads", json={}, headers=bearer(api_key))
    assert upload.status_code == 200, upload.text
    assert upload.json()["inputRef"].startswith("minio://")
    assert upload.json()["uploadUrl"].startswith("http")


async def test_idempotency_key_header(http: httpx.AsyncClient, api_key: str) -> None:
    key = {"Idempotency-Key": f"http-{uuid.uuid4().hex}", **bearer(api_key)}
    body = {"prompt": PROMPT, "params": {"maxTokens": 4}}
    first, again = [await http.post("/v1/jobs", json=body, headers=key) for _ in range(2)]
    assert first.status_code == again.status_code == 202
    assert first.json()["jobId"] == again.json()["jobId"]
    other = await http.post("/v1/jobs", json={**body, "prompt": "Another prompt"}, headers=key)
    refused(other, 409, "already_exists", "idempotency_key")


async def test_bad_requests_are_4xx_json_naming_the_field(http: httpx.AsyncClient, api_key: str) -> None:
    key = bearer(api_key)
    refused(
        await http.post("/v1/jobs", json={"params": {"maxTokens": 4}}, headers=key), 400, "invalid_argument", "prompt"
    )
    refused(
        await http.post("/v1/jobs", json={"prompt": "x", "bogus": 1}, headers=key), 400, "invalid_argument", "bogus"
    )
    refused(await http.post("/v1/jobs", content=b"{not json", headers=key), 400, "invalid_argument")
    refused(await http.post("/v1/jobs", json=["a list"], headers=key), 400, "invalid_argument")
    temperature = {"prompt": "x", "params": {"temperature": 9}}
    refused(await http.post("/v1/jobs", json=temperature, headers=key), 400, "invalid_argument", "params.temperature")
    refused(await http.post("/v1/jobs", json={"prompt": "x", "pipeline": "nope"}, headers=key), 400, "invalid_argument")
    refused(await http.post("/v1/jobs", json={"prompt": "x"}), 401, "unauthenticated")
    refused(await http.post("/v1/jobs", json={"prompt": "x"}, headers=bearer("wrong")), 401, "unauthenticated")
    refused(await http.get("/v1/jobs/job_" + "a" * 26, headers=key), 404, "not_found")
    refused(await http.get("/v1/jobs/not-a-job", headers=key), 400, "invalid_argument", "job_id")
    refused(await http.get("/v1/jobs", params={"pageSize": 1000}, headers=key), 400, "invalid_argument", "page_size")
    refused(await http.get("/v1/jobs", params={"pageSize": "many"}, headers=key), 400, "invalid_argument")
    refused(await http.delete("/v1/jobs", headers=key), 405, "http_error")


async def test_cors_lets_loopback_pages_in_and_others_out(http: httpx.AsyncClient, api_key: str) -> None:
    page = "http://127.0.0.1:5173"
    preflight = {
        "Origin": page,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }
    allowed = await http.options("/v1/jobs", headers=preflight)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["access-control-allow-origin"] == page
    assert "idempotency-key" in allowed.headers["access-control-allow-headers"].lower()
    denied = await http.options("/v1/jobs", headers={**preflight, "Origin": "http://evil.example"})
    assert denied.status_code == 400
    assert "access-control-allow-origin" not in denied.headers
    posted = await http.post("/v1/jobs", json={"prompt": PROMPT}, headers={"Origin": page, **bearer(api_key)})
    assert posted.headers["access-control-allow-origin"] == page
    assert "location" in posted.headers["access-control-expose-headers"].lower()


async def test_a_stream_that_ended_answers_204_and_a_live_one_sends_a_retry_hint(
    http: httpx.AsyncClient, api_key: str
) -> None:
    reply = await http.post("/v1/jobs", json={"prompt": PROMPT, "params": {"maxTokens": 3}}, headers=bearer(api_key))
    url = reply.json()["eventsUrl"]
    async with sse_client() as client:
        events = await read_stream(client, url)
        async with client.stream("GET", url, headers={"Accept": "text/event-stream"}) as stream:
            first = await stream.aiter_lines().__anext__()
        ended = await client.get(url, headers={"Last-Event-ID": str(events[-1].id)})
    assert events[-1].id == cursors.terminal()
    assert first.startswith("retry: ")
    assert ended.status_code == 204


@pytest.mark.perf
async def test_http_submit_latency_next_to_grpc(http: httpx.AsyncClient, api_key: str, stack: Settings) -> None:
    async def timed(call: Any) -> float:
        started = time.perf_counter()
        await call
        return (time.perf_counter() - started) * 1000

    body = {"prompt": PROMPT, "params": {"maxTokens": 1}}
    async with job_service(stack) as stub:
        grpc_stub: Stub = stub
        request = api.SubmitJobRequest(prompt=PROMPT, params={"max_tokens": 1})
        for _ in range(3):  # warm both paths
            await http.post("/v1/jobs", json=body, headers=bearer(api_key))
            await grpc_stub.SubmitJob(request, metadata=auth(api_key))
        over_http, over_grpc = [], []
        for _ in range(30):
            over_http.append(await timed(http.post("/v1/jobs", json=body, headers=bearer(api_key))))
            over_grpc.append(await timed(grpc_stub.SubmitJob(request, metadata=auth(api_key))))

    def p(values: list[float], q: int) -> float:
        return statistics.quantiles(values, n=100)[q - 1]

    print(
        f"\nSubmitJob p50/p99: HTTP {p(over_http, 50):.1f}/{p(over_http, 99):.1f} ms, "
        f"gRPC {p(over_grpc, 50):.1f}/{p(over_grpc, 99):.1f} ms"
    )
    assert p(over_http, 50) > 0
