"""Fixtures shared by the unit test modules: one Temporal dev server for the whole run.

The PipelineWorkflow modules (tests/unit/test_pipeline_workflow_*.py) all ask for `client`; being session-scoped
here, one dev server (the CLI binary the bootstrap builds) serves every one of them, as it served the single
module they were split from. Each test still runs its own job on its own task queues.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from devstack.gobuild import find_existing
from devstack.temporal_server import TEMPORAL_CLI_VERSION
from jobstream.payload_store import data_converter
from jobstream.search_attributes import JOB_PIPELINE, JOB_STATUS, JOB_TENANT
from jobstream.settings import Settings


def temporal_binary() -> Path | None:
    """The binary devstack.temporal_server.install() would use, without building one: $JOBSTREAM_TEMPORAL_BIN, PATH,
    then the bootstrap's cache slot."""
    existing = find_existing("temporal", "JOBSTREAM_TEMPORAL_BIN")
    if existing:
        return existing
    cached = Settings().cache_dir / f"temporal-{TEMPORAL_CLI_VERSION}" / "temporal"
    return cached if cached.is_file() else None


@pytest_asyncio.fixture(scope="session")
async def client() -> AsyncIterator[Client]:
    """A client of a local Temporal dev server with the project's converter and search attributes."""
    binary = temporal_binary()
    if binary is None:
        pytest.skip(
            f"no Temporal CLI: `make bootstrap` builds it (temporal-{TEMPORAL_CLI_VERSION} "
            "under the cache dir) or name one with JOBSTREAM_TEMPORAL_BIN"
        )
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(binary),
        # The project's converter; every payload here is far under the claim-check threshold, so the
        # external store (a MinIO that is not there) is never asked.
        data_converter=data_converter(Settings(minio_port=1)),
        search_attributes=[JOB_TENANT, JOB_STATUS, JOB_PIPELINE],
    )
    try:
        yield env.client
    finally:
        await env.shutdown()
