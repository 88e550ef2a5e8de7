"""Run child processes in the foreground: start in order, wait for health, restart with backoff, stop cleanly.

In production an orchestrator does this; locally `jobstream up` needs the same guarantees so that a crash
of any one piece (the very thing jobstream is built to survive) heals without a human.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# Receives the pid of the process being probed, so a probe can tell a fresh process from its predecessor.
Probe = Callable[[int], Awaitable[bool]]

RESTART_BACKOFF_MAX_S = 30.0
# A child that stayed up this long is considered healthy again and its backoff starts over.
STABLE_AFTER_S = 60.0


class PortInUseError(RuntimeError):
    pass


class StartError(RuntimeError):
    pass


@dataclass
class Child:
    name: str
    argv: list[str]
    ready: Probe
    env: dict[str, str] = field(default_factory=dict)
    # (port, environment variable that moves it, or "" for a fixed one): checked free before the first start.
    ports: list[tuple[int, str]] = field(default_factory=list)
    ready_timeout_s: float = 60.0
    after_exit: Callable[[], None] | None = None
    cwd: Path | None = None


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class _Running:
    def __init__(self, child: Child, process: asyncio.subprocess.Process, log: IO[bytes]) -> None:
        self.child = child
        self.process = process
        self.log = log
        self.started_at = time.monotonic()


class Supervisor:
    def __init__(
        self, host: str, logs_dir: Path, say: Callable[[str], None] = print, pids_file: Path | None = None
    ) -> None:
        self.host = host
        self.logs_dir = logs_dir
        # Every pid ever started, for operators and for the tests that prove shutdown leaves no orphan.
        self.pids_file = pids_file
        self.say = say
        self._running: dict[str, _Running] = {}
        self._order: list[Child] = []
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False
        # Called with the child's name after every start and restart (the cluster rewrites its endpoints file).
        self.on_spawn: Callable[[str], None] | None = None

    def check_ports(self, children: list[Child]) -> None:
        for child in children:
            for port, variable in child.ports:
                if not port_is_free(self.host, port):
                    remedy = f" or set {variable} to another port" if variable else ""
                    raise PortInUseError(
                        f"port {port} ({child.name}) is already in use on {self.host}: stop what holds it{remedy}"
                    )

    async def start(self, child: Child) -> None:
        """Start one child and wait until its probe passes; raise StartError with its log tail if not."""
        self._order.append(child)
        await self._spawn(child)
        await self._wait_ready(child)
        self._watchers.append(asyncio.create_task(self._watch(child)))

    async def _spawn(self, child: Child) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.logs_dir / f"{child.name}.log", "ab")  # noqa: SIM115, ASYNC230 - lives as long as the child
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {child.name}\n".encode())
        log.flush()
        process = await asyncio.create_subprocess_exec(
            *child.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **child.env},
            cwd=child.cwd,
            # Own process group: stopping a child also stops anything it forked (Triton's stubs).
            start_new_session=True,
        )
        self._running[child.name] = _Running(child, process, log)
        if self.pids_file is not None:
            with self.pids_file.open("a") as pids:
                pids.write(f"{child.name} {process.pid}\n")
        if self.on_spawn is not None:
            self.on_spawn(child.name)

    async def _wait_ready(self, child: Child) -> None:
        running = self._running[child.name]
        deadline = time.monotonic() + child.ready_timeout_s
        while time.monotonic() < deadline:
            if running.process.returncode is not None:
                break
            with contextlib.suppress(Exception):
                if await child.ready(running.process.pid):
                    return
            await asyncio.sleep(0.2)
        reason = (
            f"exited with code {running.process.returncode}"
            if running.process.returncode is not None
            else f"not ready after {child.ready_timeout_s:.0f}s"
        )
        raise StartError(f"{child.name} {reason}; last lines of {self.log_path(child)}:\n{self.tail(child)}")

    def log_path(self, child: Child) -> Path:
        return self.logs_dir / f"{child.name}.log"

    def tail(self, child: Child, lines: int = 20) -> str:
        try:
            text = self.log_path(child).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def _watch(self, child: Child) -> None:
        backoff = 1.0
        while True:
            running = self._running[child.name]
            code = await running.process.wait()
            if self._stopping:
                return  # stop() closes the log and cleans up
            running.log.close()
            # What the dead child forked is still in its group (Triton's model stubs, reparented to init,
            # holding shared memory): clear it before after_exit cleans up and a new one starts.
            await reap_group(running.process.pid)
            if child.after_exit:
                child.after_exit()
            if time.monotonic() - running.started_at > STABLE_AFTER_S:
                backoff = 1.0
            self.say(f"! {child.name} exited with code {code}; restarting in {backoff:.0f}s")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RESTART_BACKOFF_MAX_S)
            if self._stopping:
                return
            await self._spawn(child)
            try:
                await self._wait_ready(child)
                self.say(f"  {child.name} restarted (pid {self._running[child.name].process.pid})")
            except StartError as exc:
                self.say(f"! {child.name} did not come back: {exc}")

    def pid(self, name: str) -> int:
        return self._running[name].process.pid

    async def stop(self, timeout_s: float = 15.0) -> None:
        """Stop children in reverse start order: SIGTERM the group, then SIGKILL what is left."""
        self._stopping = True
        for child in reversed(self._order):
            running = self._running.get(child.name)
            if running is None:
                continue
            await _terminate(running.process, timeout_s)
            if not running.log.closed:
                running.log.close()
            if child.after_exit:
                child.after_exit()
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)


async def reap_group(pgid: int, timeout_s: float = 5.0) -> None:
    """SIGKILL every process left in the group `pgid` and wait until none is (not even a zombie)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return
        await asyncio.sleep(0.05)


def group_members(pgid: int) -> list[int]:
    """The live pids in process group `pgid` (/proc/PID/stat: state, then ppid, then pgrp). A zombie waiting
    for its new parent to reap it holds nothing any more, so it does not count."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(group) == pgid and state != "Z":
                members.append(int(stat.parent.name))
    return members


async def _terminate(process: asyncio.subprocess.Process, timeout_s: float) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    # The leader is gone; reap any straggler it left in its group (e.g. a stub mid-shutdown), and wait until it
    # is gone too: an after_exit clean-up keeps what a live process still maps (Triton's shared memory), so a
    # straggler still dying when it ran would leave its region behind.
    await reap_group(process.pid)
