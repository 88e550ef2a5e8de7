"""Event cursors: deterministic, ordered ids for a job's events.

A job's story is: job.started, then per stage (started, tokens 0..n-1, completed), then one terminal event.
Each event's id encodes its place in that story, so ids sort in story order as plain strings, and an event
published twice (a retried activity re-sends what its crashed predecessor already sent) carries the same
id twice. Readers deliver an event only if its id sorts after the last one they delivered: that is what
makes delivery exactly-once at the client.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# ASCII digits only, and no trailing newline (which `$` would let through): a client-supplied cursor that
# passes must compare with ours the way our own ids compare.
_CURSOR = re.compile(r"[0-9]{3}\.[0-9]\.[0-9]{7}")
TERMINAL_SLOT = 999
STARTED_PHASE, TOKEN_PHASE, COMPLETED_PHASE = 1, 2, 3
MAX_INDEX = 9_999_999


def cursor(slot: int, phase: int, index: int = 0) -> str:
    return f"{slot:03d}.{phase}.{index:07d}"


def job_started() -> str:
    return cursor(0, 0)


def stage_started(stage_index: int) -> str:
    return cursor(stage_index + 1, STARTED_PHASE)


def token(stage_index: int, index: int) -> str:
    return cursor(stage_index + 1, TOKEN_PHASE, index)


def stage_completed(stage_index: int) -> str:
    return cursor(stage_index + 1, COMPLETED_PHASE)


def terminal() -> str:
    return cursor(TERMINAL_SLOT, 9)


def is_valid(value: str) -> bool:
    return _CURSOR.fullmatch(value) is not None


class Position(NamedTuple):
    slot: int  # 0 job.started, 1.. the stages (stage index + 1), TERMINAL_SLOT the terminal event
    phase: int  # within a stage: STARTED, TOKEN, COMPLETED
    token_index: int  # a token's index in its stage (0 for other events)


def parse(value: str) -> Position:
    """ValueError for anything that is not a cursor."""
    if not is_valid(value):
        raise ValueError(f"{value!r} is not an event id")
    slot, phase, index = value.split(".")
    return Position(int(slot), int(phase), int(index))


def is_token_of(value: str, stage_index: int) -> bool:
    """Whether `value` is the id of a token of the stage `stage_index`."""
    if not is_valid(value):
        return False
    position = parse(value)
    return position.slot == stage_index + 1 and position.phase == TOKEN_PHASE


def next_token(value: str, step: int = 1) -> str | None:
    """The id of the token `step` places after the token `value` in its stage; None if `value` is no token id
    or the index would leave the range."""
    if not is_valid(value):
        return None
    position = parse(value)
    index = position.token_index + step
    if position.phase != TOKEN_PHASE or not 0 <= index <= MAX_INDEX:
        return None
    return cursor(position.slot, position.phase, index)
