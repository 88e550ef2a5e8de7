"""`jobstream submit` retries a submit whose JobService went away mid-call, with the same idempotency key, so
the retry gets the job the first call may have started rather than a second one."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from jobstream import cli
from jobstream.v1 import job_service_pb2 as api


class Unavailable(grpc.aio.AioRpcError):
    def __init__(self) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "gone", None)


class FlakyStub:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.keys: list[str] = []

    async def SubmitJob(self, request: api.SubmitJobRequest, metadata: Any) -> api.SubmitJobResponse:
        self.keys.append(request.idempotency_key)
        if len(self.keys) <= self.failures:
            raise Unavailable
        return api.SubmitJobResponse(job_id="job_" + "a" * 26)


async def test_a_submit_is_retried_with_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_wait(_: float) -> None:
        pass

    monkeypatch.setattr(asyncio, "sleep", no_wait)
    stub = FlakyStub(failures=2)
    request = api.SubmitJobRequest(prompt="Hi", idempotency_key="cli-1")
    assert (await cli.submit_retrying(stub, request, ())).job_id.startswith("job_")
    assert stub.keys == ["cli-1"] * 3
    with pytest.raises(grpc.aio.AioRpcError):
        await cli.submit_retrying(FlakyStub(failures=cli.SUBMIT_ATTEMPTS), request, ())
