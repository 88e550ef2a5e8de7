"""Core pinning for figure 4: the bridge's threads on one core and the load generator's on the others, so the
client's own CPU does not show up as bridge latency on the bridge's core."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from typing import Any

import psutil


def split_cores(allowed: Iterable[int]) -> tuple[int, list[int]] | None:
    """(the bridge's core, this process's cores) out of the cores this process may use; None under two."""
    cores = sorted(allowed)
    if len(cores) < 2:
        return None
    return cores[-1], cores[:-1]


def _pin(process: psutil.Process, cores: Iterable[int]) -> None:
    # sched_setaffinity on a pid moves only that thread: every thread is pinned on its own (the bridge's
    # Temporal client and this process's gRPC and Temporal core run threads besides the event loop).
    for thread in process.threads():
        with contextlib.suppress(ProcessLookupError):  # a thread that exited meanwhile
            os.sched_setaffinity(thread.id, set(cores))


@contextlib.contextmanager
def pinned(bridge_pid: int) -> Iterator[dict[str, Any]]:
    """The bridge on one core and this process (the load generator) on the others, both restored on exit.

    Yields what was done, for the figure's measured data.
    """
    allowed = sorted(os.sched_getaffinity(0))
    split = split_cores(allowed)
    if split is None:
        yield {"pinned": False, "cores": allowed, "note": f"{len(allowed)} core: bridge and load generator not pinned"}
        return
    bridge_core, own_cores = split
    bridge, own = psutil.Process(bridge_pid), psutil.Process()
    try:
        bridge_before = bridge.cpu_affinity()
    except psutil.Error as exc:
        yield {"pinned": False, "cores": allowed, "note": f"could not read the bridge's affinity ({exc}): not pinned"}
        return
    info: dict[str, Any] = {"pinned": True, "bridge_core": bridge_core, "load_generator_cores": own_cores}
    try:
        try:
            _pin(bridge, [bridge_core])
            _pin(own, own_cores)
        except (PermissionError, psutil.Error) as exc:
            info = {"pinned": False, "cores": allowed, "note": f"could not pin ({exc}): not pinned"}
        yield info
    finally:
        with contextlib.suppress(PermissionError, psutil.Error):
            _pin(bridge, bridge_before)
        _pin(own, allowed)
