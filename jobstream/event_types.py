"""The types of a job's events: the `type` of every JobEvent on the log, of every SSE `event:` line and of the
workflow's event specs (jobstream.workflow_io). The strings are the wire format and never change."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    JOB_STARTED = "job.started"
    STAGE_STARTED = "stage.started"
    STAGE_COMPLETED = "stage.completed"
    TOKEN = "token"
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"


TERMINAL_TYPES = frozenset({EventType.JOB_COMPLETED, EventType.JOB_FAILED, EventType.JOB_CANCELLED})
