"""Processes without a port of their own (Temporal workers) announce readiness with a file holding their pid."""

from __future__ import annotations

import os
from pathlib import Path

from jobstream.settings import get_settings


def ready_file(role: str) -> Path:
    return get_settings().state_dir / "run" / f"{role}.ready"


def mark_ready(role: str) -> None:
    path = ready_file(role)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getpid()))


def is_ready(role: str, pid: int) -> bool:
    try:
        return ready_file(role).read_text().strip() == str(pid)
    except OSError:
        return False
