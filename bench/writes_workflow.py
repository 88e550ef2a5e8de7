"""Figure 7's baseline: the least durable work Temporal does for a job, one workflow with one activity.

No memo, no search attributes, no local activities, no events: start, a workflow task, one no-op
activity, a workflow task, completion. What a `generate` job writes beyond this is what jobstream's
workflow adds (its events, stages, status upserts). The benchmark runs the worker in-process on its own
task queue, like figure 5's.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

TASK_QUEUE = "jobstream-bench-writes"


@activity.defn(name="bench_noop")
async def noop() -> int:
    return 0


@workflow.defn(name="BenchOneActivity")
class OneActivityWorkflow:
    @workflow.run
    async def run(self) -> int:
        result: int = await workflow.execute_activity(
            "bench_noop", result_type=int, start_to_close_timeout=timedelta(seconds=30)
        )
        return result
