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
