"""What every figure shares: statistics, result rows, the stack's clients, job submission and draining."""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

import grpc
import psutil
from temporalio.client import Client

from jobstream.auth import ensure_dev_key
from jobstream.connections import job_service_channel
from jobstream.settings import Settings
from jobstream.temporal_client import connect
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import GenerationParams
from jobstream.v1.job_service_pb2_grpc import JobServiceStub
from jobstream.workflow_io import JOB_WORKFLOWS

# The generated stub is generic only for type checkers.
Stub: TypeAlias = "JobServiceStub[grpc.aio.Channel]"
Figure: TypeAlias = dict[str, Any]

# One prompt for every figure, already in the form preprocess hands the model, so a direct Triton call
# with it gets exactly the tokens the pipeline streams.
PROMPT = "It is a truth universally acknowledged"
SEED = 7
TEMPERATURE = 0.8
GPU_WORKER = "gpu-worker-tinylm"  # the supervisor's name for the worker that runs every bench pipeline's model
DIRECT_CLIENT = "a direct Triton client (this process)"


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ranked = sorted(values)
    rank = max(1, min(len(ranked), math.ceil(p / 100 * len(ranked))))
    return ranked[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, p50, p99, mean, min, max of a sample (ms, or whatever unit it is in)."""
    return {
        "n": float(len(values)),
        "p50": median(values),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values) if values else math.nan,
        "min": min(values) if values else math.nan,
        "max": max(values) if values else math.nan,
    }


def ratio(ours: float | None, baseline: float | None) -> float | None:
    if ours is None or baseline is None or not math.isfinite(baseline) or baseline == 0 or not math.isfinite(ours):
        return None
    return ours / baseline


def row(
    metric: str, unit: str, ours: float | None, baseline: float | None, baseline_name: str, note: str = ""
) -> dict[str, Any]:
    """One line of the table: our figure, the baseline measured in the same run, ours / baseline.

    `ours` is None for a figure this run could not measure (the note says why); the table shows "-".
    """
    return {
        "metric": metric,
        "unit": unit,
        "ours": ours,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "ratio": ratio(ours, baseline),
        "note": note,
    }


def stamp_of(iso: str) -> float:
    """Epoch seconds of an event's JSON `time` (RFC 3339, as protobuf writes it)."""
    return datetime.fromisoformat(iso).timestamp()


@dataclass
class Context:
    """The running stack, as the benchmark reaches it."""

    settings: Settings
    stub: Stub
    temporal: Client
    api_key: str

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),)

    async def submit(
        self, pipeline: str, max_tokens: int, prompt: str = PROMPT, seed: int = SEED
    ) -> api.SubmitJobResponse:
        request = api.SubmitJobRequest(
            pipeline=pipeline,
            prompt=prompt,
            params=GenerationParams(max_tokens=max_tokens, seed=seed, temperature=TEMPERATURE),
        )
        reply: api.SubmitJobResponse = await self.stub.SubmitJob(request, metadata=self.metadata, timeout=30.0)
        return reply

    async def running_jobs(self) -> int:
        count = await self.temporal.count_workflows(f"{JOB_WORKFLOWS} AND ExecutionStatus = 'Running'")
        return count.count

    async def drain(self, limit_s: float) -> float:
        """Wait until no job is running (so one figure's backlog does not load the next); seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < limit_s:
            if await self.running_jobs() == 0:
                break
            await asyncio.sleep(0.25)
        return time.monotonic() - started

    def child_pid(self, name: str) -> int:
        """A child's pid from the supervisor's record, e.g. "sse-bridge" or "gpu-worker-tinylm"."""
        pids = pids_file(self.settings)
        pid = recorded_pids(pids.read_text()).get(name)
        if pid is None or not Path(f"/proc/{pid}").exists():
            raise RuntimeError(f"no live {name} in {pids}")
        return pid

    def replica_pids(self, name: str) -> list[int]:
        """The live processes of `name`: the one of the single-node stack, or the cluster's replicas of it
        (`name-1`, `name-2`, ...)."""
        pids = recorded_pids(pids_file(self.settings).read_text())
        found = [
            pid
            for role, pid in pids.items()
            if (role == name or (role.startswith(f"{name}-") and role[len(name) + 1 :].isdigit()))
            and Path(f"/proc/{pid}").exists()
        ]
        if not found:
            raise RuntimeError(f"no live {name} in {pids_file(self.settings)}")
        return found

    def bridge_pid(self) -> int:
        return self.child_pid("sse-bridge")


def pids_file(settings: Settings) -> Path:
    return settings.state_dir / "run" / "children.pids"


def recorded_pids(text: str) -> dict[str, int]:
    """children.pids ("name pid" per line) as name -> pid; the last line per name wins: the supervisor
    appends a line on every (re)start, so earlier lines are processes that have exited."""
    pids: dict[str, int] = {}
    for line in text.splitlines():
        name, _, pid = line.strip().partition(" ")
        if pid.strip().isdigit():
            pids[name] = int(pid)
    return pids


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU of every thread of a process so far (not its children: none of ours fork)."""
    times = process.cpu_times()
    return times.user + times.system


@contextlib.asynccontextmanager
async def open_context(settings: Settings, api_key: str = "") -> AsyncIterator[Context]:
    """The stack's clients, calling with `api_key` (default: the local stack's development key)."""
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    async with job_service_channel(settings, options=options) as channel:
        key = api_key or ensure_dev_key(settings)
        yield Context(settings, JobServiceStub(channel), await connect(settings), key)
