"""Everything under tests/cluster runs against the cluster profile (`jobstream up --cluster`): through its nginx
edge, with TLS, as a client outside would. One cluster serves the package: reused when one is up, else started
here and stopped after the package's last test, so that it never runs beside the single-node suite."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from devstack.cluster import ClusterLayout
from devstack.cluster_endpoints import Endpoints
from jobstream.settings import PROJECT_ROOT, Settings, get_settings
from tests.cluster.nodes import Cluster
from tests.stack.job_service_client import Stub, job_service

# A first start builds Temporal's server (about 2 minutes here) and may install PostgreSQL and nginx.
STARTUP_TIMEOUT_S = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster/" in str(item.fspath):
            item.add_marker(pytest.mark.cluster)


def _edge_answers(endpoints_file: Path) -> bool:
    try:
        endpoints = Endpoints.read(endpoints_file)
        context = ssl.create_default_context(cafile=endpoints.ca_file)
        return httpx.get(f"{endpoints.edge_http}/healthz", verify=context, timeout=2.0).status_code == 200
    except (OSError, ValueError, httpx.HTTPError):
        return False


def _wait_up(process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jobstream up --cluster exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        if "the jobstream cluster is up" in log.read_text(errors="replace"):
            return
        time.sleep(1.0)
    raise RuntimeError(f"jobstream up --cluster not up after {STARTUP_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="package")
def cluster() -> Iterator[Cluster]:
    base = get_settings()
    layout = ClusterLayout.of(base)
    if _edge_answers(layout.endpoints_file):
        yield Cluster.of(base, layout)
        return
    log = base.state_dir / "test-cluster.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobstream.cli", "up", "--cluster"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            env=os.environ.copy(),
        )
    try:
        _wait_up(process, log)
        yield Cluster.of(base, layout)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=120)
        assert code == 0, f"jobstream up --cluster exited with {code} on SIGTERM:\n{log.read_text()[-4000:]}"
        pids = layout.state_dir / "run" / "children.pids"
        alive = [line for line in pids.read_text().splitlines() if Path(f"/proc/{line.split()[1]}").exists()]
        assert not alive, f"processes left running after jobstream up --cluster stopped: {alive}"


@pytest.fixture(scope="package")
def edge(cluster: Cluster) -> Settings:
    """A client's settings: the edge's gRPC address and CA, the cluster's keys and Temporal."""
    return cluster.client_settings


@pytest.fixture(scope="package")
def api_key(cluster: Cluster) -> str:
    return cluster.endpoints().api_key


@pytest.fixture
async def stub(edge: Settings) -> AsyncIterator[Stub]:
    async with job_service(edge) as service:
        yield service
