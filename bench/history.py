"""Reading a workflow's history: when it started, and each activity's scheduled/started/completed times."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory


@dataclass
class Span:
    name: str
    scheduled: float
    started: float | None = None
    completed: float | None = None

    @property
    def ran_s(self) -> float:
        """How long the activity itself ran (started -> completed); 0 while it has not completed."""
        if self.started is None or self.completed is None:
            return 0.0
        return self.completed - self.started


def _time(event: HistoryEvent) -> float:
    return float(event.event_time.ToMicroseconds()) / 1e6


def workflow_started(history: WorkflowHistory) -> float:
    return _time(history.events[0])


def activity_spans(history: WorkflowHistory) -> list[Span]:
    """Activities in the order they were scheduled (started is the last attempt's start)."""
    spans: dict[int, Span] = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            spans[event.event_id] = Span(name, _time(event))
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            spans[event.activity_task_started_event_attributes.scheduled_event_id].started = _time(event)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            spans[event.activity_task_completed_event_attributes.scheduled_event_id].completed = _time(event)
    return list(spans.values())


# The trip from a workflow's start to its first remote activity's start, in the history's own times.
FIRST_TRIP = (
    "start -> first workflow task started",  # the task's dispatch to a worker
    "first workflow task",  # the worker's run (sandbox, local activities, commands) and its completion
    "first activity scheduled -> started",  # the activity's dispatch to the other worker
)


def _first(history: WorkflowHistory, event_type: EventType.ValueType) -> HistoryEvent:
    return next(event for event in history.events if event.event_type == event_type)


def first_trip_split(history: WorkflowHistory, activity: str) -> dict[str, float]:
    """Seconds of each FIRST_TRIP segment, up to the start of the first activity named `activity`."""
    task_started = _time(_first(history, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED))
    task_completed = _time(_first(history, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED))
    span = next(span for span in activity_spans(history) if span.name == activity)
    assert span.started is not None
    return dict(
        zip(
            FIRST_TRIP,
            (task_started - workflow_started(history), task_completed - task_started, span.started - span.scheduled),
            strict=True,
        )
    )
