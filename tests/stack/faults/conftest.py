"""Fixtures of the fault, load and bad-input suites (`jobstream reliability` runs them and reports)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from jobstream.settings import Settings
from tests.stack.helpers import Stub, job_service


@pytest.fixture
async def stub(stack: Settings) -> AsyncIterator[Stub]:
    """A fresh channel per test: a test that kills the JobService must not leave a broken one behind."""
    async with job_service(stack) as service:
        yield service
