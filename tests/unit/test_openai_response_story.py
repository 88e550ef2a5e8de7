"""sse_bridge/openai_api/response_story.py: a job's story as the Responses stream, numbered as a pure function of
the story, checked against the official openai SDK's own types and stream accumulator (no server)."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from openai import omit
from openai._models import construct_type
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent

from jobstream.v1.event_pb2 import JobCancelled, JobCompleted, JobEvent, JobFailed, JobStarted, TokenEvent
from jobstream.v1.job_pb2 import JobError, Usage
from sse_bridge.openai_api.response_story import FIRST_DELTA, ResponseStory

JOB = "job_" + "a" * 26
TOKENS = ["It", " is", " a", " truth"]
USED = Usage(prompt_tokens=3, output_tokens=len(TOKENS))
CREATED = 1_800_000_000


def started() -> JobEvent:
    return JobEvent(job_id=JOB, type="job.started", time=Timestamp(seconds=1_800_000_000), job_started=JobStarted())


def tokens() -> list[JobEvent]:
    return [JobEvent(job_id=JOB, type="token", token=TokenEvent(index=i, text=text)) for i, text in enumerate(TOKENS)]


def completed(finish_reason: str = "stop") -> JobEvent:
    done = JobCompleted(
        result_text="".join(TOKENS), tokens_generated=len(TOKENS), usage=USED, finish_reason=finish_reason
    )
    return JobEvent(job_id=JOB, type="job.completed", job_completed=done)


def translate(story: list[JobEvent]) -> list[dict[str, Any]]:
    response_story = ResponseStory(JOB, "generate", CREATED, {"order": "42"})
    return [out for event in story for out in response_story.events(event)]


def through_sdk(events: list[dict[str, Any]]) -> ResponseStreamState[Any]:
    """Feeds the events to the SDK's own stream accumulator, as `responses.stream()` does."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in events:
        state.handle_event(construct_type(type_=ResponseStreamEvent, value=event))  # type: ignore[arg-type]
    return state


def test_a_completed_story_is_the_documented_sequence_numbered_without_gaps() -> None:
    events = translate([started(), *tokens(), completed()])
    assert [e["type"] for e in events] == [
        "response.created",
        "response.queued",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(TOKENS),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["sequence_number"] for e in events if e["type"].endswith(".delta")] == [
        FIRST_DELTA + i for i in range(len(TOKENS))
    ]
    final = Response.model_validate(events[-1]["response"])  # the SDK's model, required fields and all
    assert (final.status, final.output_text) == ("completed", "".join(TOKENS))
    assert (final.created_at, final.metadata) == (CREATED, {"order": "42"})  # the job's own, in every event
    assert all(e["response"]["metadata"] == {"order": "42"} for e in events if "response" in e)
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (3, 4, 7)


def test_every_replay_numbers_the_story_the_same() -> None:
    story = [started(), *tokens(), completed()]
    assert translate(story) == translate(story)


def test_the_sdk_accumulates_the_stream_to_its_final_response() -> None:
    state = through_sdk(translate([started(), *tokens(), completed()]))
    final = state._completed_response
    assert final is not None
    assert final.output_text == "".join(TOKENS)


def test_a_story_cut_at_its_budget_is_an_incomplete_response() -> None:
    events = translate([started(), *tokens(), completed("length")])
    assert events[-1]["type"] == "response.incomplete"
    final = Response.model_validate(events[-1]["response"])
    assert final.status == "incomplete"
    assert final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens"
    through_sdk(events)


@pytest.mark.parametrize(
    ("end", "kind", "status"),
    [
        (
            JobEvent(job_id=JOB, type="job.cancelled", job_cancelled=JobCancelled(reason="r")),
            "response.incomplete",
            "cancelled",
        ),
        (
            JobEvent(job_id=JOB, type="job.failed", job_failed=JobFailed(error=JobError(message="out of memory"))),
            "response.failed",
            "failed",
        ),
    ],
    ids=["cancelled", "failed"],
)
def test_a_story_that_does_not_complete_still_ends_with_an_event_the_sdk_knows(
    end: JobEvent, kind: str, status: str
) -> None:
    events = translate([started(), *tokens()[:2], end])
    assert (events[-1]["type"], events[-1]["sequence_number"]) == (kind, FIRST_DELTA + 2)
    assert Response.model_validate(events[-1]["response"]).status == status
    through_sdk(events)


def test_stage_events_say_nothing_to_this_surface() -> None:
    assert ResponseStory(JOB, "generate", CREATED, {}).events(JobEvent(job_id=JOB, type="stage.started")) == []
