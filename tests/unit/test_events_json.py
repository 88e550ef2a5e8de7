"""jobstream/event_log.py: the JSON body of each event type (SSE `data:`), zero values included."""

from __future__ import annotations

import json

from google.protobuf.timestamp_pb2 import Timestamp

from jobstream import cursors
from jobstream.event_log import event_data, event_json, parse_event
from jobstream.event_types import TERMINAL_TYPES
from jobstream.v1.event_pb2 import (
    JobCancelled,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobStarted,
    StageEvent,
    TokenEvent,
)
from jobstream.v1.job_pb2 import JobError, Usage

JOB = "job_" + "a" * 26


def test_token_index_zero_is_present() -> None:
    event = JobEvent(id=cursors.token(0, 0), job_id=JOB, type="token", token=TokenEvent(index=0, text="", stage="gen"))
    data = json.loads(event_json(event))
    assert data == {"job_id": JOB, "type": "token", "index": 0, "text": "", "stage": "gen"}
    assert isinstance(data["index"], int)


def test_time_is_rfc3339_when_set() -> None:
    event = JobEvent(id=cursors.job_started(), job_id=JOB, type="job.started", time=Timestamp(seconds=1_700_000_000))
    event.job_started.CopyFrom(JobStarted(pipeline="generate", stages=["preprocess", "generate", "postprocess"]))
    data = event_data(event)
    assert data["time"] == "2023-11-14T22:13:20Z"
    assert data["stages"] == ["preprocess", "generate", "postprocess"]
    assert data["pipeline"] == "generate"


def test_stage_event_keeps_index_zero_and_attempt() -> None:
    event = JobEvent(
        id=cursors.stage_started(0),
        job_id=JOB,
        type="stage.started",
        stage=StageEvent(stage="preprocess", stage_index=0, stage_count=3, attempt=1),
    )
    assert event_data(event) == {
        "job_id": JOB,
        "type": "stage.started",
        "stage": "preprocess",
        "stage_index": 0,
        "stage_count": 3,
        "attempt": 1,
    }


def test_job_completed_carries_result_text() -> None:
    event = JobEvent(
        id=cursors.terminal(),
        job_id=JOB,
        type="job.completed",
        job_completed=JobCompleted(result_text=" It is a truth", tokens_generated=4),
    )
    data = event_data(event)
    assert data["result_text"] == " It is a truth"
    assert data["tokens_generated"] == 4
    assert "result_url" not in data  # the other side of the oneof stays out
    # Even an empty result is said, not dropped: the oneof member is set.
    empty = JobEvent(
        id=cursors.terminal(), job_id=JOB, type="job.completed", job_completed=JobCompleted(result_text="")
    )
    assert event_data(empty)["result_text"] == ""
    assert event_data(empty)["tokens_generated"] == 0


def test_job_completed_with_a_url() -> None:
    url = "http://minio:9000/jobstream/results/x?X-Amz-Signature=abc"
    event = JobEvent(
        id=cursors.terminal(), job_id=JOB, type="job.completed", job_completed=JobCompleted(result_url=url)
    )
    data = event_data(event)
    assert data["result_url"] == url
    assert "result_text" not in data


def test_failed_and_cancelled() -> None:
    failed = JobEvent(
        id=cursors.terminal(),
        job_id=JOB,
        type="job.failed",
        job_failed=JobFailed(error=JobError(code="GpuOutOfMemory", message="out of memory"), stage="generate"),
    )
    assert event_data(failed)["error"] == {"code": "GpuOutOfMemory", "message": "out of memory"}
    assert event_data(failed)["stage"] == "generate"
    cancelled = JobEvent(id=cursors.terminal(), job_id=JOB, type="job.cancelled", job_cancelled=JobCancelled())
    assert event_data(cancelled) == {
        "job_id": JOB,
        "type": "job.cancelled",
        "reason": "",
        "stage": "",
        "tokens_generated": 0,
        "finish_reason": "",
    }
    billed = JobCancelled(usage=Usage(prompt_tokens=9, output_tokens=4), finish_reason="cancelled")
    data = event_data(JobEvent(id=cursors.terminal(), job_id=JOB, type="job.cancelled", job_cancelled=billed))
    assert (data["usage"], data["finish_reason"]) == ({"prompt_tokens": 9, "output_tokens": 4}, "cancelled")
    assert {"job.completed", "job.failed", "job.cancelled"} == TERMINAL_TYPES


def test_json_is_compact_utf8_and_round_trips_the_protobuf() -> None:
    event = JobEvent(
        id=cursors.token(1, 7), job_id=JOB, type="token", token=TokenEvent(index=7, text=" caf\u00e9 \u2014")
    )
    text = event_json(event)
    assert " caf\u00e9 \u2014" in text  # not \u-escaped
    assert ", " not in text
    assert ": " not in text
    assert parse_event(event.SerializeToString()) == event
