"""Processes without a port of their own (Temporal workers) announce readiness with a file holding their pid."""

from __future__ import annotations

import os
from pathlib import Path

from jobstream.settings import get_settings


def ready_file(role: str, state_dir: Path | None = None) -> Path:
    return (state_dir or get_settings().state_dir) / "run" / f"{role}.ready"


def mark_ready(role: str) -> None:
    """Announce this process ready, under its replica's name where it is one of several (settings' instance)."""
    path = ready_file(get_settings().instance or role)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getpid()))


def is_ready(role: str, pid: int, state_dir: Path | None = None) -> bool:
    """Whether process `pid` announced itself as `role` in `state_dir` (its settings' STATE_DIR)."""
    try:
        return ready_file(role, state_dir).read_text().strip() == str(pid)
    except OSError:
        return False
