"""How a Python-backend model's stub process ends cleanly when the Triton server goes.

A sibling of `stream_kit.py` at the model repository's root (Triton ignores plain files there);
`StreamingModel.initialize` starts both watchers. On SIGTERM to the process group, the open streams end at
once with a retryable `UNAVAILABLE` error; when the server dies without a word (SIGKILL: no `finalize`), the
orphaned stub removes its shared-memory region and exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from pathlib import Path

import triton_python_backend_utils as pb_utils

SHM_PREFIX = "triton_python_backend_shm_region_"
PARENT_CHECK_S = 0.5


def _stop_on_sigterm(stopping: threading.Event, name: str) -> tuple[socket.socket, socket.socket] | None:
    """Set `stopping` when this stub process gets SIGTERM.

    Triton keeps a decoupled model loaded while any of its streams is open, so at shutdown it would
    wait for every stream to run to its end (well past --exit-timeout-secs, and it exits non-zero
    leaving a /dev/shm region). The stub ignores SIGTERM itself; when the whole process group is
    signalled (jobstream's supervisor does `killpg`), the streams end at once with a retryable
    `UNAVAILABLE` error instead. Python delivers signals to the main thread only, which the stub's
    main thread rarely runs, hence the wakeup fd and a watcher thread. Returns the socket pair (keep
    it referenced), or None when not called from the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def watch() -> None:
        while not stopping.is_set():
            data = reader.recv(64)
            if not data:
                return
            if signal.SIGTERM in data:
                pb_utils.Logger.log_info(f"{name}: SIGTERM, ending open streams (UNAVAILABLE)")
                stopping.set()

    threading.Thread(target=watch, name=f"{name}-sigterm", daemon=True).start()
    return reader, writer


def _exit_when_orphaned(name: str) -> None:
    """A stub whose server died (SIGKILL: no finalize) is reparented and would live on, holding its shared
    memory. When its parent changes, it removes its own region and exits."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        try:
            with contextlib.suppress(OSError):
                arguments = Path("/proc/self/cmdline").read_bytes().split(b"\0")
                for region in (a.decode() for a in arguments if a.startswith(SHM_PREFIX.encode())):
                    os.unlink(f"/dev/shm/{region}")
            # Not Triton's logger: it talks to the dead server. Its log file may be gone too.
            with contextlib.suppress(OSError):
                os.write(2, f"{name}: the Triton server (pid {parent}) is gone; exiting\n".encode())
        finally:
            os._exit(0)

    threading.Thread(target=watch, name=f"{name}-parent", daemon=True).start()
