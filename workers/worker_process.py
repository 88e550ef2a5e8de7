"""Shared life cycle of the worker processes: connect, run, announce readiness, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from jobstream.logs import configure_logging
from jobstream.readiness import mark_ready
from jobstream.settings import Settings
from jobstream.tracing import start_tracing, stop_tracing

# Cancellation reaches an activity through its heartbeat response; heartbeating at least this often is
# what lets CancelJob stop a generation within a second.
HEARTBEAT_THROTTLE = timedelta(milliseconds=300)
# On SIGTERM running activities get this long to finish before they are cancelled (and retried elsewhere).
GRACEFUL_SHUTDOWN = timedelta(seconds=10)


async def run_workers(
    role: str,
    client: Client,
    make: Callable[[Client], Sequence[Worker]],
    beside: Callable[[Client], Coroutine[Any, Any, None]] | None = None,
) -> None:
    """Runs the workers `make` builds (and the task `beside`, which must not return) until SIGINT or SIGTERM."""
    workers = list(make(client))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runs = [asyncio.create_task(worker.run()) for worker in workers]
    if beside is not None:
        runs.append(asyncio.create_task(beside(client)))
    mark_ready(role)
    logging.getLogger(role).info("%s polling %s", role, ", ".join(w.task_queue for w in workers))
    stopped = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*runs, stopped], return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*(worker.shutdown() for worker in workers))
    for task in runs[len(workers) :]:
        task.cancel()
    stop_tracing()
    for task in runs:
        if task in done and task.exception():
            raise task.exception()  # type: ignore[misc]


def workflow_runner() -> WorkflowRunner:
    """The job workflows' sandbox with every module passed through: it still refuses non-deterministic calls, but
    no longer re-imports the workflow's modules for each new run, which cost a job's first workflow task about
    4 ms of its time to first token (bench figure 2). Safe while workflow modules hold constants only, no
    mutable state a run could leave to the next. Workers, replayers and workflow tests all use this one."""
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_all_modules())


def worker_options() -> dict[str, Any]:
    return {
        "max_heartbeat_throttle_interval": HEARTBEAT_THROTTLE,
        "default_heartbeat_throttle_interval": HEARTBEAT_THROTTLE,
        "graceful_shutdown_timeout": GRACEFUL_SHUTDOWN,
    }


def start_process(role: str, settings: Settings) -> None:
    """The process's log format, and its traces when the environment configures them."""
    configure_logging(role, settings)
    start_tracing(role)
