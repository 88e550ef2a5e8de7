"""Event cursors: deterministic, ordered ids for a job's events.

A job's story is: job.started, then per stage (started, tokens 0..n-1, completed), then one terminal event.
Each event's id encodes its place in that story, so ids sort in story order as plain strings, and an event
published twice (a retried activity re-sends what its crashed predecessor already sent) carries the same
id twice. Readers deliver an event only if its id sorts after the last one they delivered: that is what
makes delivery exactly-once at the client.
"""

from __future__ import annotations

import re

# ASCII digits only, and no trailing newline (which `$` would let through): a client-supplied cursor that
# passes must compare with ours the way our own ids compare.
_CURSOR = re.compile(r"[0-9]{3}\.[0-9]\.[0-9]{7}")
TERMINAL_SLOT = 999


def cursor(slot: int, phase: int, index: int = 0) -> str:
    return f"{slot:03d}.{phase}.{index:07d}"


def job_started() -> str:
    return cursor(0, 0)


def stage_started(stage_index: int) -> str:
    return cursor(stage_index + 1, 1)


def token(stage_index: int, index: int) -> str:
    return cursor(stage_index + 1, 2, index)


def stage_completed(stage_index: int) -> str:
    return cursor(stage_index + 1, 3)


def terminal() -> str:
    return cursor(TERMINAL_SLOT, 9)


def is_valid(value: str) -> bool:
    return _CURSOR.fullmatch(value) is not None
