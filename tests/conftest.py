"""One local stack for the whole test run: reuse one that is already up, or start `jobstream up` once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from temporalio.client import Client

from devstack import reliability as report
from devstack.triton import orphaned_shm
from jobstream.auth import ensure_dev_key
from jobstream.settings import PROJECT_ROOT, Settings, get_settings
from jobstream.temporal_client import connect

STARTUP_TIMEOUT_S = 600


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full",
        action="store_true",
        help="run the fault, load and bad-input suites at full size (also: JOBSTREAM_SUITE=full)",
    )


@pytest.fixture(scope="session")
def full_suite(request: pytest.FixtureRequest) -> bool:
    """Full size on demand (`--full`, or `jobstream reliability --full`); CI runs the reduced sizes."""
    return bool(request.config.getoption("--full")) or os.environ.get("JOBSTREAM_SUITE") == "full"


def _serving(target: str) -> bool:
    try:
        with grpc.insecure_channel(target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1.0)
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def _wait_ready(process: subprocess.Popen[bytes], log: Path, target: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jobstream up exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        if "jobstream is up" in log.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise RuntimeError(f"jobstream up not ready after {STARTUP_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Settings]:
    """The running stack's settings. Started here unless one already answers; stopped cleanly at the end."""
    if _serving(settings.grpc_target):
        yield settings
        return
    shm_before = set(orphaned_shm())
    log = settings.state_dir / "test-stack.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobstream.cli", "up"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            env=os.environ.copy(),
        )
    try:
        _wait_ready(process, log, settings.grpc_target)
        yield settings
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        assert code == 0, f"jobstream up exited with {code} on SIGTERM:\n{log.read_text()[-4000:]}"
        # A clean stop leaves no process it started and no shared-memory region Triton made.
        pids = settings.state_dir / "run" / "children.pids"
        alive = [line for line in pids.read_text().splitlines() if Path(f"/proc/{line.split()[1]}").exists()]
        assert not alive, f"processes left running after jobstream up stopped: {alive}"
        # Regions another running Triton still maps are its own, not ours: only orphans count.
        leftover = set(orphaned_shm()) - shm_before
        assert not leftover, f"shared memory left behind: {leftover}"


@pytest.fixture(scope="session")
def api_key(stack: Settings) -> str:
    return ensure_dev_key(stack)


@pytest.fixture(scope="session")
async def temporal_client(stack: Settings) -> Client:
    return await connect(stack)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    # Keep the call phase's outcome on the item, for the `reliability` fixture's teardown.
    outcome = yield
    if call.when == "call":
        item.stash[_CALL_OUTCOME] = "passed" if call.excinfo is None else "failed"
    return outcome


_CALL_OUTCOME = pytest.StashKey[str]()


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Iterator[report.Record]:
    """The test's line in the reliability report (`jobstream reliability`): the test fills in what it did."""
    record = report.Record(fault=request.node.name, test=request.node.nodeid)
    started = time.monotonic()
    yield record
    record.outcome = request.node.stash.get(_CALL_OUTCOME, "error")
    record.seconds = round(time.monotonic() - started, 1)
    report.append(record)
