"""devstack/supervisor.py with real (tiny) child processes: start, restart with backoff, stop, and refusals."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from devstack import supervisor as supervisor_module
from devstack.supervisor import Child, PortInUseError, Probe, StartError, Supervisor
from tests.eventually import eventually

# One script for every child: announce readiness by writing its pid (atomically) to the file named by argv[1].
CHILD = """
import os, signal, subprocess, sys, time
ready, mode = sys.argv[1], sys.argv[2]
print("hello from the child", flush=True)
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "fork":
    grandchild = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]
    )
    with open(ready + ".grandchild", "w") as out:
        out.write(str(grandchild.pid))
if mode == "slow":
    time.sleep(0.5)
if mode == "exit":
    sys.exit(3)
with open(ready + ".tmp", "w") as out:
    out.write(str(os.getpid()))
os.replace(ready + ".tmp", ready)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (an orphan's zombie waits for init, not for us)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_gone(pid: int, within_s: float = 5.0) -> None:
    await eventually(lambda: not alive(pid), within_s=within_s, what=f"process {pid} gone")


def pid_file_probe(path: Path) -> Probe:
    async def probe(pid: int) -> bool:
        return path.exists() and path.read_text() == str(pid)

    return probe


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.script = tmp_path / "child.py"
        self.script.write_text(CHILD)
        self.said: list[str] = []
        self.supervisor = Supervisor("127.0.0.1", tmp_path / "logs", say=self.said.append)

    def child(self, name: str, mode: str = "sleep", ready: Probe | None = None, **options: Any) -> Child:
        ready_file = self.tmp_path / f"{name}.ready"
        argv = [sys.executable, str(self.script), str(ready_file), mode]
        return Child(name, argv, ready or pid_file_probe(ready_file), **options)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    await harness.supervisor.stop(timeout_s=2.0)


class _FastBackoff:
    """`asyncio` as the supervisor sees it, with restart backoffs recorded and shortened 20-fold."""

    def __init__(self) -> None:
        self.backoffs: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float) -> None:
        if delay >= 1.0:
            self.backoffs.append(delay)
            delay /= 20
        await asyncio.sleep(delay)


async def test_start_returns_once_the_child_is_ready(harness: Harness) -> None:
    child = harness.child("slow-starter", "slow")
    await harness.supervisor.start(child)
    pid = harness.supervisor.pid("slow-starter")
    # start() returned only after the child wrote its readiness (0.5 s after it began).
    assert (harness.tmp_path / "slow-starter.ready").read_text() == str(pid)
    assert alive(pid)
    assert "hello from the child" in harness.supervisor.tail(child)


async def test_a_child_that_dies_is_restarted_with_backoff_and_said(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _FastBackoff()
    monkeypatch.setattr(supervisor_module, "asyncio", fast)
    await harness.supervisor.start(harness.child("crashy"))
    pids = [harness.supervisor.pid("crashy")]

    def restarts() -> int:
        return sum("restarted" in line for line in harness.said)

    for round_ in (1, 2, 3):
        os.kill(pids[-1], signal.SIGKILL)
        await eventually(lambda: restarts() >= round_, what=f"restart {round_}")  # noqa: B023 - awaited at once
        pids.append(harness.supervisor.pid("crashy"))
    assert fast.backoffs == [1.0, 2.0, 4.0]  # doubling from 1 s
    exits = [line for line in harness.said if "exited" in line]
    assert exits == [
        "! crashy exited with code -9; restarting in 1s",
        "! crashy exited with code -9; restarting in 2s",
        "! crashy exited with code -9; restarting in 4s",
    ]
    assert f"  crashy restarted (pid {pids[-1]})" in harness.said
    assert len(set(pids)) == 4
    assert not any(alive(pid) for pid in pids[:-1])
    # Each new process passed the readiness probe before "restarted" was said.
    assert (harness.tmp_path / "crashy.ready").read_text() == str(pids[-1])


async def test_stop_ends_children_and_their_process_groups(harness: Harness) -> None:
    await harness.supervisor.start(harness.child("forker", "fork"))
    await harness.supervisor.start(harness.child("plain"))
    forker, plain = harness.supervisor.pid("forker"), harness.supervisor.pid("plain")
    grandchild = int((harness.tmp_path / "forker.ready.grandchild").read_text())
    assert alive(grandchild)
    await harness.supervisor.stop(timeout_s=5.0)
    await wait_gone(forker)
    await wait_gone(plain)
    # It ignores SIGTERM and its parent is gone, yet it is killed with the group.
    await wait_gone(grandchild)  # the grandchild must not outlive stop()
    assert not any("exited" in line for line in harness.said)  # a stop is not a crash


async def test_a_dead_childs_group_is_cleared_before_its_restart(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As when tritonserver alone is SIGKILLed: its forked helper (a model stub) would live on, reparented.
    monkeypatch.setattr(supervisor_module, "asyncio", _FastBackoff())
    cleared: list[bool] = []
    grandchild_file = harness.tmp_path / "forker.ready.grandchild"

    def after_exit() -> None:  # runs before the restart: the group must be empty by then
        cleared.append(not alive(int(grandchild_file.read_text())))

    await harness.supervisor.start(harness.child("forker", "fork", after_exit=after_exit))
    leader, grandchild = harness.supervisor.pid("forker"), int(grandchild_file.read_text())
    os.kill(leader, signal.SIGKILL)
    await eventually(lambda: any("restarted" in line for line in harness.said), what="a restart said")
    assert cleared == [True]
    assert not alive(grandchild)
    assert supervisor_module.group_members(leader) == []


async def test_a_child_ignoring_sigterm_is_killed_after_the_timeout(harness: Harness) -> None:
    await harness.supervisor.start(harness.child("stubborn", "ignore-term"))
    pid = harness.supervisor.pid("stubborn")
    started = time.monotonic()
    await harness.supervisor.stop(timeout_s=0.5)
    elapsed = time.monotonic() - started
    assert not alive(pid)
    assert 0.5 <= elapsed < 5.0, elapsed
    # The supervisor reaped it itself: killed by SIGKILL, not by the SIGTERM it ignored.
    assert harness.supervisor._running["stubborn"].process.returncode == -signal.SIGKILL


async def test_port_in_use_names_the_port_and_the_variable(harness: Harness) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        child = harness.child("server", ports=[(port, "JOBSTREAM_THING_PORT")])
        with pytest.raises(PortInUseError) as caught:
            harness.supervisor.check_ports([harness.child("other"), child])
    message = str(caught.value)
    assert f"port {port} (server)" in message
    assert "JOBSTREAM_THING_PORT" in message
    harness.supervisor.check_ports([child])  # free again once the holder closed


async def test_a_child_that_never_becomes_ready(harness: Harness) -> None:
    async def never(_pid: int) -> bool:
        return False

    child = harness.child("sleepy", ready=never, ready_timeout_s=1.0)
    with pytest.raises(StartError) as caught:
        await harness.supervisor.start(child)
    message = str(caught.value)
    assert message.startswith("sleepy not ready after 1s; last lines of ")
    assert str(harness.supervisor.log_path(child)) in message
    assert "hello from the child" in message
    pid = harness.supervisor.pid("sleepy")
    await harness.supervisor.stop(timeout_s=2.0)  # what `jobstream up` does after a failed start
    await wait_gone(pid)


async def test_a_child_that_exits_before_ready(harness: Harness) -> None:
    child = harness.child("quitter", "exit", ready_timeout_s=10.0)
    started = time.monotonic()
    with pytest.raises(StartError, match=r"(?s)^quitter exited with code 3; .*hello from the child"):
        await harness.supervisor.start(child)
    assert time.monotonic() - started < 5.0  # noticed at once, not after the readiness timeout


async def test_a_probe_that_raises_counts_as_not_ready(harness: Harness) -> None:
    calls: list[int] = []

    async def flaky(pid: int) -> bool:
        calls.append(pid)
        if len(calls) < 3:
            raise ConnectionRefusedError("not listening yet")
        return True

    await harness.supervisor.start(harness.child("flaky", ready=flaky))
    assert len(calls) == 3
