"""What a job's event stream must hold: a successful job's whole story, checked event by event
(check_story), or measured against the ids it should have had (audit_stream) for the reliability report."""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from typing import Any

from tests.stack.sse_parser import SseEvent


@dataclass(frozen=True)
class Story:
    text: str  # the model stage's token texts, concatenated in index order
    tokens: int
    result_text: str  # from the terminal job.completed event


def check_story(job_id: str, events: list[SseEvent], stages: list[str], model_stage: str = "generate") -> Story:
    """Assert `events` is the whole story of a successful job, each event exactly once and in order.

    job.started (naming the stages), then per stage started / (the model stage's tokens 0..n-1) / completed,
    then job.completed last; every event has its own id, ids strictly increase, and every data names the job.
    """
    ids = [event.id or "" for event in events]
    assert all(ids), f"an event without an id: {ids}"
    assert all(a < b for a, b in itertools.pairwise(ids)), f"ids not strictly increasing: {ids}"
    for event in events:
        data = event.json
        assert data["job_id"] == job_id, data
        assert data["type"] == event.event, data
    types = [event.event for event in events]
    expected = ["job.started"]
    for _ in stages:
        expected += ["stage.started", "stage.completed"]
    expected.append("job.completed")
    assert [t for t in types if t != "token"] == expected, types
    assert events[0].json["stages"] == stages
    stage_events = [event.json for event in events if event.event.startswith("stage.")]
    assert [s["stage"] for s in stage_events] == [name for name in stages for _ in range(2)]
    tokens = [event.json for event in events if event.event == "token"]
    assert [t["index"] for t in tokens] == list(range(len(tokens))), [t["index"] for t in tokens]
    assert all(t["stage"] == model_stage for t in tokens)
    if tokens:  # the tokens sit together between their own stage's started and completed events
        slot = stages.index(model_stage)
        first = types.index("token")
        started = [i for i, t in enumerate(types) if t == "stage.started"][slot]
        completed = [i for i, t in enumerate(types) if t == "stage.completed"][slot]
        assert started + 1 == first, types
        assert first + len(tokens) == completed, types
    final = events[-1].json
    assert final["tokens_generated"] == len(tokens), final
    text = "".join(t["text"] for t in tokens)
    return Story(text=text, tokens=len(tokens), result_text=str(final.get("result_text", "")))


# -- what a client received, measured before it is asserted -------------------------------------------------


@dataclass(frozen=True)
class StreamAudit:
    events: int  # events received
    lost: int  # expected events never received
    duplicated: int  # receptions of an event id already received
    misrouted: int  # events naming another job, or out of story order


def expected_ids(stage_count: int, model_slot: int, tokens: int) -> list[str]:
    """The ids of a successful job's whole story, in order (one model stage at `model_slot`, 0-based)."""
    from jobstream import cursors

    ids = [cursors.job_started()]
    for stage in range(stage_count):
        ids.append(cursors.stage_started(stage))
        if stage == model_slot:
            ids += [cursors.token(stage, index) for index in range(tokens)]
        ids.append(cursors.stage_completed(stage))
    return [*ids, cursors.terminal()]


def audit_stream(job_id: str, events: list[SseEvent], expected: list[str]) -> StreamAudit:
    """Compare a received stream with the expected ids; measured, not asserted, so the report can say it."""
    ids = [event.id or "" for event in events]
    seen: set[str] = set()
    duplicated = 0
    for event_id in ids:
        duplicated += event_id in seen
        seen.add(event_id)
    misrouted = 0
    for event in events:
        with contextlib.suppress(ValueError, AssertionError):
            if event.json.get("job_id") != job_id:
                misrouted += 1
    misrouted += sum(1 for a, b in itertools.pairwise(ids) if a >= b and a != b)
    return StreamAudit(
        events=len(events),
        lost=len(set(expected) - seen),
        duplicated=duplicated,
        misrouted=misrouted,
    )


def add_audit(record: Any, audit: StreamAudit) -> None:
    """Count one checked stream into a reliability record (devstack.reliability.Record)."""
    record.events += audit.events
    record.lost += audit.lost
    record.duplicated += audit.duplicated
    record.misrouted += audit.misrouted
