"""Figure 4's setup decisions without a stack: which levels the open-file limits let run, this process's raised
limit, and pinning the bridge and the load generator to cores of their own."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

import pytest

pytest.importorskip("matplotlib")  # the bench dependency group
pytest.importorskip("psutil")

import psutil

from bench import fanout


def test_open_file_limits_decide_which_levels_run() -> None:
    limits = (
        "Limit                     Soft Limit           Hard Limit           Units     \n"
        "Max cpu time              unlimited            unlimited            seconds   \n"
        "Max open files            1024                 524288               files     \n"
    )
    assert fanout.parse_nofile(limits) == 1024
    assert fanout.parse_nofile(limits.replace(" 1024 ", " unlimited ")) == float("inf")
    assert fanout.parse_nofile("nothing") is None
    assert fanout.skip_reason(1000, own_limit=524288, bridge_limit=1024) != ""
    assert "bridge" in fanout.skip_reason(1000, own_limit=524288, bridge_limit=1024)
    assert fanout.skip_reason(1000, own_limit=524288, bridge_limit=None) == ""  # unknown: try
    assert "this process" in fanout.skip_reason(5000, own_limit=4096, bridge_limit=float("inf"))
    assert fanout.skip_reason(5000, own_limit=65536, bridge_limit=65536) == ""


def test_the_soft_limit_is_raised_for_the_figure_and_restored() -> None:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    with fanout.raised_nofile() as raised:
        assert raised >= before[0]
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == before


def test_the_bridge_gets_the_last_core_and_the_load_generator_the_rest() -> None:
    assert fanout.split_cores({0}) is None
    assert fanout.split_cores({3, 1}) == (3, [1])
    assert fanout.split_cores(range(4)) == (3, [0, 1, 2])


def test_pinning_moves_every_thread_and_restores_them() -> None:
    # A stand-in for the bridge with a second thread: affinity is per thread, so both must move.
    script = "import threading, time; threading.Thread(target=time.sleep, args=(30,)).start(); time.sleep(30)"
    bridge = subprocess.Popen([sys.executable, "-c", script])
    try:
        process = psutil.Process(bridge.pid)
        deadline = time.monotonic() + 10
        while len(process.threads()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        allowed = os.sched_getaffinity(0)
        with fanout.pinned(bridge.pid) as pinning:
            if len(allowed) < 2:
                assert pinning["pinned"] is False
            else:
                assert pinning["pinned"] is True
                assert {pinning["bridge_core"], *pinning["load_generator_cores"]} == allowed
                assert all(os.sched_getaffinity(t.id) == {pinning["bridge_core"]} for t in process.threads())
                assert os.sched_getaffinity(0) == set(pinning["load_generator_cores"])
        assert all(os.sched_getaffinity(t.id) == allowed for t in process.threads())
        assert os.sched_getaffinity(0) == allowed
    finally:
        bridge.kill()
        bridge.wait()
