"""One log format across processes: a line about a job names it, in text and in JSON."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from jobstream.logs import JobContext, about_job, formatter


def line(log_format: str, message: str = "hello", **extra: object) -> str:
    record = logging.LogRecord("jobstream.test", logging.WARNING, __file__, 1, message, None, None)
    for name, value in extra.items():
        setattr(record, name, value)
    JobContext().filter(record)
    return formatter("cpu-worker", log_format).format(record)


def test_a_text_line_names_the_role_level_logger_and_its_job() -> None:
    with about_job("job_abc"):
        text = line("text")
    assert text.endswith(" cpu-worker WARNING jobstream.test [job_id=job_abc]: hello")
    assert line("text").endswith(" cpu-worker WARNING jobstream.test: hello")  # about no job: no brackets


def test_a_json_line_is_one_object_with_the_same_fields() -> None:
    with about_job("job_abc"):
        data = json.loads(line("json"))
    assert data["service"] == "cpu-worker"
    assert data["level"] == "WARNING"
    assert data["logger"] == "jobstream.test"
    assert data["message"] == "hello"
    assert data["job_id"] == "job_abc"
    assert "time" in data
    assert "trace_id" not in data  # no span is current


def test_the_temporal_sdks_context_names_the_job() -> None:
    # What temporalio's activity logger attaches: the workflow id is the job id.
    data = json.loads(line("json", temporal_activity={"workflow_id": "job_xyz", "activity_type": "run_model"}))
    assert data["job_id"] == "job_xyz"
    assert data["temporal_activity"]["activity_type"] == "run_model"


def test_a_line_inside_a_span_carries_its_trace_and_span_ids() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span, about_job("job_abc"):
        text, data = line("text"), json.loads(line("json"))
    context = span.get_span_context()
    assert f"[job_id=job_abc trace_id={context.trace_id:032x}]" in text
    assert data["trace_id"] == f"{context.trace_id:032x}"
    assert data["span_id"] == f"{context.span_id:016x}"


def test_about_job_is_undone_on_the_way_out() -> None:
    with pytest.raises(RuntimeError), about_job("job_abc"):
        raise RuntimeError
    assert "job_id" not in line("text")
