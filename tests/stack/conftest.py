"""Everything under tests/stack runs against the real local stack."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from jobstream.settings import Settings
from tests.stack.job_service_client import Stub, job_service
from tests.stack.tenants import tenant_key


def pytest_configure(config: pytest.Config) -> None:
    # Measurements that print figures (run with -s); they run in the normal suite too, kept short.
    config.addinivalue_line("markers", "perf: prints a performance figure; select with -m perf")


@pytest.fixture(autouse=True)
def _needs_stack(stack: Settings) -> None:
    """Every test here starts (or reuses) the real stack."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/stack/" in str(item.fspath):
            item.add_marker(pytest.mark.stack)


# Shared by the modules split out of one (JobService acceptance, the front doors): one channel per module, as
# each had. A module (or the faults' conftest) that defines its own `stub` overrides this one.
@pytest.fixture(scope="module")
async def stub(stack: Settings) -> AsyncIterator[Stub]:
    async with job_service(stack) as client:
        yield client


@pytest.fixture
def tenant_a(stack: Settings) -> Iterator[tuple[str, str]]:
    with tenant_key(stack, "tenant-a") as tenant:
        yield tenant


@pytest.fixture
def tenant_b(stack: Settings) -> Iterator[tuple[str, str]]:
    with tenant_key(stack, "tenant-b") as tenant:
        yield tenant
