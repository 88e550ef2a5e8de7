"""Reading a job's Temporal history: its payloads, its activities' starts and attempts, and the markers its
local CPU stages left."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter

from jobstream.workflow_io import LocalStageResult


def iter_payloads(message: Message) -> Iterator[Payload]:
    """Every temporalio Payload anywhere inside a protobuf message (fields walked generically)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            entries = value.values()
            if field.message_type.fields_by_name["value"].message_type is None:
                continue
            for entry in entries:
                yield from iter_payloads(entry)
        elif field.is_repeated:
            for item in value:
                yield from iter_payloads(item)
        else:
            yield from iter_payloads(value)


def events_of(history: WorkflowHistory, event_type: int) -> list[HistoryEvent]:
    return [event for event in history.events if event.event_type == event_type]


def activity_names(history: WorkflowHistory) -> dict[int, str]:
    """Scheduled event id -> activity type name."""
    return {
        event.event_id: event.activity_task_scheduled_event_attributes.activity_type.name
        for event in events_of(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    }


def local_stage_markers(history: WorkflowHistory) -> list[tuple[HistoryEvent, dict[str, Any]]]:
    """The markers local CPU stages (run_local_stage) left, with each one's data, in the order they ran: a
    local activity leaves a marker, not activity events."""
    found = []
    for event in events_of(history, EventType.EVENT_TYPE_MARKER_RECORDED):
        details = event.marker_recorded_event_attributes.details
        if "data" in details:
            data: dict[str, Any] = json.loads(details["data"].payloads[0].data)
            if data.get("activity_type") == "run_local_stage":
                found.append((event, data))
    return found


def local_stage_attempts(history: WorkflowHistory) -> list[int]:
    """The attempt each local CPU stage ended at (its marker's data names it)."""
    return [int(data["attempt"]) for _, data in local_stage_markers(history)]


async def local_stage_results(history: WorkflowHistory, converter: DataConverter) -> list[LocalStageResult]:
    """What each local CPU stage that succeeded returned (its marker holds the result)."""
    results = []
    for event, _ in local_stage_markers(history):
        details = event.marker_recorded_event_attributes.details
        if "result" in details:
            results += await converter.decode(details["result"].payloads, [LocalStageResult])
    return results


def activity_starts(history: WorkflowHistory, name: str) -> list[HistoryEvent]:
    """The ActivityTaskStarted events of one activity type (Temporal records one per activity: the last attempt)."""
    names = activity_names(history)
    return [
        event
        for event in events_of(history, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
        if names.get(event.activity_task_started_event_attributes.scheduled_event_id) == name
    ]


async def history_of(client: Client, job_id: str) -> WorkflowHistory:
    return await client.get_workflow_handle(job_id).fetch_history()
