"""Open-file limits for the fan-out figures: reading another process's RLIMIT_NOFILE, raising this process's
own for the figure, and deciding which levels cannot run within them (figures 4 and 9)."""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator

import psutil

FD_MARGIN = 64  # descriptors either side needs besides the streams (Kafka, Temporal, gRPC, logs)


def parse_nofile(limits: str) -> float | None:
    """The soft "Max open files" of a /proc/PID/limits text; inf for unlimited, None if absent."""
    for line in limits.splitlines():
        if line.startswith("Max open files"):
            soft = line.removeprefix("Max open files").split()[0]
            return float("inf") if soft == "unlimited" else float(soft)
    return None


def nofile_limit(pid: int) -> float | None:
    """Another process's soft RLIMIT_NOFILE (prlimit through psutil, else /proc/PID/limits); None if
    neither can be read."""
    try:
        soft, _ = psutil.Process(pid).rlimit(psutil.RLIMIT_NOFILE)
        return float("inf") if soft == resource.RLIM_INFINITY else float(soft)
    except (psutil.Error, OSError):
        pass
    try:
        with open(f"/proc/{pid}/limits") as limits:
            return parse_nofile(limits.read())
    except OSError:
        return None


def skip_reason(streams: int, own_limit: float, bridge_limit: float | None) -> str:
    """Why a level cannot run within these open-file limits ("" if it can): rather than EMFILE chaos."""
    needed = streams + FD_MARGIN
    if bridge_limit is not None and bridge_limit < needed:
        return f"the bridge's open-file limit is {bridge_limit:.0f}, below {needed} ({streams} streams + {FD_MARGIN})"
    if own_limit < needed:
        return f"this process's open-file limit is {own_limit:.0f}, below {needed} ({streams} streams + {FD_MARGIN})"
    return ""


@contextlib.contextmanager
def raised_nofile() -> Iterator[float]:
    """This process's RLIMIT_NOFILE soft limit raised to its hard limit (restored on exit); yields it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = soft
    if hard != soft:
        # Linux refuses RLIM_INFINITY for open files (the ceiling is fs.nr_open): keep the soft limit then.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            raised = hard
    try:
        yield float("inf") if raised == resource.RLIM_INFINITY else float(raised)
    finally:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
