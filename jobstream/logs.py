"""Every process's log lines, in one format: time, role, level, logger, and for a line about a job its
`job_id` (and the trace and span ids while a span is current); one JSON object per line with
`JOBSTREAM_LOG_FORMAT=json`.

A line is about a job when it is written inside `about_job(job_id)` (the JobService's calls, the bridge's
streams) or inside a Temporal activity or workflow, whose workflow id is the job id."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter
from temporalio import activity, workflow

from jobstream.settings import Settings

JOB_ID_ATTRIBUTE = "jobstream.job_id"
_JOB_ID: ContextVar[str] = ContextVar("jobstream_job_id", default="")
TEXT_FORMAT = "%(asctime)s {role} %(levelname)s %(name)s%(job_context)s: %(message)s"


@contextlib.contextmanager
def about_job(job_id: str) -> Iterator[None]:
    """Lines logged inside (and in tasks started inside) name `job_id`."""
    token = _JOB_ID.set(job_id)
    try:
        yield
    finally:
        _JOB_ID.reset(token)


def bind_job(job_id: str) -> None:
    """Name `job_id` on the lines the rest of the current task (a request's handler) logs, and on its span."""
    _JOB_ID.set(job_id)
    trace.get_current_span().set_attribute(JOB_ID_ATTRIBUTE, job_id)


def _job_id(record: logging.LogRecord) -> str:
    if job_id := _JOB_ID.get():
        return job_id
    # The Temporal SDK's activity and workflow loggers attach their context as these extras.
    for extra in ("temporal_activity", "temporal_workflow"):
        details: Any = getattr(record, extra, None)
        if isinstance(details, dict) and details.get("workflow_id"):
            return str(details["workflow_id"])
    if activity.in_activity():
        return activity.info().workflow_id or ""
    return ""


class JobContext(logging.Filter):
    """Puts `job_id`, `trace_id` and `span_id` on a record, where known."""

    def filter(self, record: logging.LogRecord) -> bool:
        if job_id := _job_id(record):
            record.job_id = job_id
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = format(span.trace_id, "032x")
            record.span_id = format(span.span_id, "016x")
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{name}={getattr(record, name)}" for name in ("job_id", "trace_id") if hasattr(record, name)]
        record.job_context = f" [{' '.join(parts)}]" if parts else ""
        return super().format(record)


def formatter(role: str, log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(
            ["asctime", "levelname", "name", "message"],
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": role},
        )
    return TextFormatter(TEXT_FORMAT.format(role=role))


def configure_logging(role: str, settings: Settings) -> None:
    """The process's one handler (stderr), at INFO."""
    # The SDK's loggers would also append their context to the message; it is on the record already (as
    # extras, which JSON lines carry), and the job it names is on the line.
    activity.logger.activity_info_on_message = False
    workflow.logger.workflow_info_on_message = False
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(role, settings.log_format))
    handler.addFilter(JobContext())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
