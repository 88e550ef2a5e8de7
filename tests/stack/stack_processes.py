"""The running stack's processes, for fault injection: which pid is live, killing one, and waiting for the
supervisor's replacement to be ready."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from jobstream.settings import Settings

# `jobstream up` appends "name pid" to STATE_DIR/run/children.pids on every (re)start of a child, so the
# last line per name is the live process; it restarts a dead child with backoff (1 s, doubling).


def current_pid(settings: Settings, name: str) -> int:
    """The pid the supervisor started last for `name` (e.g. kafka, triton, job-service, cpu-worker)."""
    pids: dict[str, int] = {}
    for line in (settings.state_dir / "run" / "children.pids").read_text().splitlines():
        role, _, pid = line.partition(" ")
        if pid.strip().isdigit():
            pids[role] = int(pid)
    return pids[name]


def process_alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


def _probe(settings: Settings, name: str) -> Any:
    # The supervisor's own readiness probes, so "back" means what it means to `jobstream up`.
    from devstack import stack as devstack_stack

    probes = {
        "temporal": devstack_stack.temporal_ok(settings),
        "kafka": devstack_stack.kafka_ok(settings),
        "minio": devstack_stack.http_ok(f"http://{settings.minio_endpoint}/minio/health/live"),
        "triton": devstack_stack.http_ok(f"http://{settings.host}:{settings.triton_http_port}/v2/health/ready"),
        "job-service": devstack_stack.grpc_serving(settings),
        "sse-bridge": devstack_stack.http_ok(f"{settings.local_bridge_url}/healthz", settings.server_ca_file),
    }
    return probes.get(name) or devstack_stack.file_ready(name, settings)


async def process_ready(settings: Settings, name: str, pid: int) -> bool:
    try:
        return bool(await _probe(settings, name)(pid))
    except Exception:
        return False


def kill_process(settings: Settings, name: str, sig: int = 9, group: bool = False) -> int:
    """Send `sig` (SIGKILL unless told) to the live process `name`, or with `group` to its whole process
    group (a server and the helpers it forked, as when its container dies); returns its pid."""
    pid = current_pid(settings, name)
    assert process_alive(pid), f"{name} (pid {pid}) is not running"
    if group:
        os.killpg(pid, sig)  # the supervisor starts each child in its own session: pgid == pid
    else:
        os.kill(pid, sig)
    return pid


async def wait_restarted(settings: Settings, name: str, old_pid: int, timeout_s: float = 240.0) -> int:
    """The supervisor's replacement for a killed process: a new pid, alive and passing its readiness probe."""
    async with asyncio.timeout(timeout_s):
        while True:
            pid = current_pid(settings, name)
            if pid != old_pid and process_alive(pid) and await process_ready(settings, name, pid):
                return pid
            await asyncio.sleep(0.3)
