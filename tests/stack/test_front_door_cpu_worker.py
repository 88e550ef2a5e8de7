"""One prompt cannot freeze the CPU worker (issue 22), against the real stack: a prompt of combining marks is
refused at the front door, and uploaded past it, the worker refuses it at once while another tenant's job
runs beside it (how long that job took is printed, pytest -s, for the record)."""

from __future__ import annotations

from pathlib import Path

import grpc
import httpx
import pytest

from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import JobStatus
from tests.stack.job_service_client import Stub, auth, post_upload, submit, wait_terminal
from tests.stack.tenants import tenant_key
from tests.stack.timing import timed

COMBINING = "\u0301\u0316"  # two marks of different classes: NFC must sort every run of them


async def test_a_prompt_of_combining_marks_is_refused_and_freezes_no_worker(
    stack: Settings, stub: Stub, api_key: str, tmp_path: Path
) -> None:
    attack = "a" + COMBINING * 80_000  # 320 KiB of marks: minutes of NFC before
    with pytest.raises(grpc.aio.AioRpcError) as inline:
        await stub.SubmitJob(api.SubmitJobRequest(prompt=attack), metadata=auth(api_key))
    assert inline.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(inline.value.details()).startswith("prompt: has a run of more than 30 combining marks")
    # An upload reaches no check at the front door: the worker refuses it, at once, and keeps serving others.
    with tenant_key(stack, "marks") as (_, key):
        upload: api.CreateUploadResponse = await stub.CreateUpload(api.CreateUploadRequest(), metadata=auth(key))
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await post_upload(http, upload, attack.encode())).status_code in (200, 201, 204)
        marked = await stub.SubmitJob(api.SubmitJobRequest(input_ref=upload.input_ref), metadata=auth(key))
        other = await submit(stub, api_key, max_tokens=4)
        done, took = await timed(lambda: wait_terminal(stub, api_key, other.job_id, timeout_s=60))
        print(f"\nanother tenant's 4-token job beside a 320 KiB prompt of marks: {took:.2f} s")
        assert done.status == JobStatus.JOB_STATUS_SUCCEEDED
        failed = await wait_terminal(stub, key, marked.job_id, timeout_s=60)
        assert failed.status == JobStatus.JOB_STATUS_FAILED
        assert "combining marks" in failed.error.message
        assert took < 10
