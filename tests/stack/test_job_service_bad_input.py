"""JobService acceptance, 10: bad input. Every bad field of every RPC gets a clear error naming the field,
and nothing bad starts a job or changes one."""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime
from typing import Any

import grpc

from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import GenerationParams, JobStatus
from services.job_service.listing import Cursor
from tests.stack.job_listing import listed_once
from tests.stack.job_service_client import VALID_JOB_ID, Stub, auth, rpc_error, submit, wait_terminal

# -- 10. bad input: a clear error naming the field, and nothing started ------------------------------------


def _request(**fields: Any) -> api.SubmitJobRequest:
    fields.setdefault("params", GenerationParams(max_tokens=8))
    return api.SubmitJobRequest(**fields)


BAD_SUBMISSIONS: list[tuple[str, api.SubmitJobRequest, grpc.StatusCode, str]] = [
    ("empty prompt", _request(prompt=""), grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
    ("whitespace prompt", _request(prompt=" \n\t  "), grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
    ("no input", _request(), grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
    ("empty input_ref", _request(input_ref=""), grpc.StatusCode.INVALID_ARGUMENT, "input_ref"),
    ("foreign input_ref", _request(input_ref="s3://elsewhere/x"), grpc.StatusCode.INVALID_ARGUMENT, "input_ref"),
    ("unknown pipeline", _request(prompt="hi", pipeline="nope"), grpc.StatusCode.INVALID_ARGUMENT, "pipeline"),
    (
        "negative max_tokens",
        _request(prompt="hi", params=GenerationParams(max_tokens=-1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "params.max_tokens",
    ),
    (
        "huge max_tokens",
        _request(prompt="hi", params=GenerationParams(max_tokens=5000)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "params.max_tokens",
    ),
    *(
        (
            f"temperature {value}",
            _request(prompt="hi", params=GenerationParams(max_tokens=8, temperature=value)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "params.temperature",
        )
        for value in (-0.1, 2.5, math.nan, math.inf)
    ),
    (
        "idempotency key with a space",
        _request(prompt="hi", idempotency_key="two words"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "idempotency_key",
    ),
    (
        "idempotency key of 129 chars",
        _request(prompt="hi", idempotency_key="k" * 129),
        grpc.StatusCode.INVALID_ARGUMENT,
        "idempotency_key",
    ),
]


async def test_bad_submissions_name_the_field_and_start_nothing(
    stub: Stub, stack: Settings, tenant_a: tuple[str, str]
) -> None:
    _, key = tenant_a
    upload: api.CreateUploadResponse = await stub.CreateUpload(api.CreateUploadRequest(), metadata=auth(key))
    cases = [
        *BAD_SUBMISSIONS,
        (
            "input_ref never uploaded",
            _request(input_ref=upload.input_ref),
            grpc.StatusCode.INVALID_ARGUMENT,
            "input_ref",
        ),
        (
            # One byte over max_input_bytes still fits the service's gRPC limit: the service itself refuses it.
            "prompt over max_input_bytes",
            _request(prompt="x" * (stack.max_input_bytes + 1)),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "prompt",
        ),
    ]
    for name, request, code, field in cases:
        error = await rpc_error(stub.SubmitJob(request, metadata=auth(key)))
        assert error.code() == code, (name, error)
        assert field in (error.details() or ""), (name, error.details())
    # Far over the limit, gRPC refuses the message before any code of ours runs: the same code.
    error = await rpc_error(stub.SubmitJob(_request(prompt="x" * (stack.max_input_bytes * 2)), metadata=auth(key)))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error

    # Nothing started: a good job submitted after them is the tenant's only job once it is listed.
    good = (await submit(stub, key, "a good one", max_tokens=8)).job_id
    assert await listed_once(stub, key, [[good]], 50) == [[good]]


async def test_bad_job_ids_cursors_and_pages_name_the_field(stub: Stub, api_key: str) -> None:
    job_id = (await submit(stub, api_key, "Lydia", max_tokens=8)).job_id
    cases: list[tuple[str, Any, str]] = []
    call: Any
    for bad in ("", "job_", "job_" + "A" * 26, "job_" + "a" * 27, "../etc/passwd", "x" * 300):
        cases += [
            (f"GetJob {bad!r}", stub.GetJob(api.GetJobRequest(job_id=bad), metadata=auth(api_key)), "job_id"),
            (f"CancelJob {bad!r}", stub.CancelJob(api.CancelJobRequest(job_id=bad), metadata=auth(api_key)), "job_id"),
            (f"WatchJob {bad!r}", stub.WatchJob(api.WatchJobRequest(job_id=bad), metadata=auth(api_key)), "job_id"),
        ]
    for bad in ("nonsense", "1.2.3", "999.9.0000000x"):
        call = stub.WatchJob(api.WatchJobRequest(job_id=job_id, after=bad), metadata=auth(api_key))
        cases.append((f"after {bad!r}", call, "after"))
    # Forged tokens, among them dates out of any job's range (they used to end in an OverflowError: UNKNOWN).
    forged = [Cursor(datetime(year, 1, 1, tzinfo=UTC), job_id, "").encode() for year in (1, 9999)]
    for bad in ("%%%not-base64", base64.urlsafe_b64encode(b"not a temporal page token").decode(), *forged):
        call = stub.ListJobs(api.ListJobsRequest(page_token=bad), metadata=auth(api_key))
        cases.append((f"page_token {bad!r}", call, "page_token"))
    call = stub.ListJobs(api.ListJobsRequest(status=99), metadata=auth(api_key))  # type: ignore[arg-type]
    cases.append(("unknown status", call, "status"))
    for size in (-1, 1001):
        call = stub.ListJobs(api.ListJobsRequest(page_size=size), metadata=auth(api_key))
        cases.append((f"page_size {size}", call, "page_size"))
    call = stub.CancelJob(api.CancelJobRequest(job_id=job_id, reason="r" * 1025), metadata=auth(api_key))
    cases.append(("long reason", call, "reason"))

    for name, call, field in cases:
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, error)
        assert field in (error.details() or ""), (name, error.details())
    # A well-formed id of a job that does not exist is simply not found.
    error = await rpc_error(stub.GetJob(api.GetJobRequest(job_id=VALID_JOB_ID), metadata=auth(api_key)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    # The bad cancel changed nothing.
    assert (await wait_terminal(stub, api_key, job_id)).status == JobStatus.JOB_STATUS_SUCCEEDED
