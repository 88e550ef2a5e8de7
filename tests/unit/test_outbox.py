"""The workflow's outbox (workers/pipeline/workflows/outbox.py) without Temporal: what goes with each trip, and
the events a local stage sent staying unconfirmed until it succeeds, so the job's end sends them again."""

from __future__ import annotations

from jobstream import cursors
from jobstream.event_log import LogLocator
from jobstream.workflow_io import JobCancelledSpec, JobStartedSpec, StageCompletedSpec, StageStartedSpec
from workers.pipeline.workflows.outbox import Outbox

JOB = "job_" + "a" * 26
STARTED = JobStartedSpec(job_id=JOB, cursor=cursors.job_started(), pipeline="generate", stages=["p", "g"])
END = JobCancelledSpec(job_id=JOB, cursor=cursors.terminal())


def stage_started(index: int) -> StageStartedSpec:
    return StageStartedSpec(
        job_id=JOB, cursor=cursors.stage_started(index), stage="s", stage_index=index, stage_count=2
    )


def test_a_local_stage_carries_what_is_pending_and_a_remote_one_takes_it_in_one_publish() -> None:
    outbox = Outbox(STARTED)
    outbox.stage_starts(0, stage_started(0))
    before = outbox.take_for_local_stage()
    assert before == [STARTED, stage_started(0)]
    assert outbox.pending == []
    announced = outbox.announce(1, stage_started(1))  # goes out after stage 0, with it
    assert outbox.published(before, [LogLocator(2, 10), LogLocator(2, 11)]) == LogLocator(2, 10)
    assert outbox.start_recorded
    outbox.stage_starts(1, announced)
    assert outbox.pending == [], "an announced stage.started is not sent again"
    outbox.add(
        StageCompletedSpec(job_id=JOB, cursor=cursors.stage_completed(1), stage="g", stage_index=1, stage_count=2)
    )
    assert outbox.ending_with(END)[-1] == END
    assert len(outbox.ending_with(END)) == 1  # taken once


def test_the_events_of_a_local_stage_that_failed_go_out_again_with_the_jobs_end() -> None:
    outbox = Outbox(STARTED)
    outbox.stage_starts(0, stage_started(0))
    sent = outbox.take_for_local_stage()  # the stage's activity sent them, then the stage failed
    assert outbox.ending_with(END) == [*sent, END]


def test_once_the_start_is_recorded_nothing_is_unconfirmed() -> None:
    outbox = Outbox(STARTED)
    outbox.published(outbox.take(), [LogLocator(0, 1)])
    outbox.stage_starts(1, stage_started(1))
    outbox.take_for_local_stage()
    assert outbox.ending_with(END) == [END]
    assert outbox.published([END], [LogLocator(0, 9)]) is None
