"""Fixtures of the fault, load and bad-input suites (`jobstream reliability` runs them and reports)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from jobstream.keys_store import remove_key
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from tests.stack.faults.fuzz_tenant import Tenant
from tests.stack.job_service_client import Stub, auth, job_service, post_upload
from tests.stack.tenants import add_api_key, tenant_key


@pytest.fixture
async def stub(stack: Settings) -> AsyncIterator[Stub]:
    """A fresh channel per test: a test that kills the JobService must not leave a broken one behind."""
    async with job_service(stack) as service:
        yield service


@pytest.fixture
async def tenant(stub: Stub, stack: Settings, api_key: str) -> AsyncIterator[Tenant]:
    """A brand-new tenant, so that every job it owns was started by this test."""
    with tenant_key(stack, "fuzz") as (name, key):
        removed = add_api_key(stack, name)
        remove_key(stack, removed)
        refs = []
        for owner, content in ((key, b"An uploaded prompt"), (key, None), (api_key, b"Someone else's prompt")):
            upload = await stub.CreateUpload(api.CreateUploadRequest(), metadata=auth(owner))
            if content is not None:
                async with httpx.AsyncClient(timeout=30) as http:
                    assert (await post_upload(http, upload, content)).is_success
            refs.append(upload.input_ref)
        yield Tenant(name, key, removed, *refs)
