"""A one-activity workflow for the Temporal smoke test, in its own module: the workflow sandbox re-imports
the module a workflow is defined in, so it must import nothing but temporalio."""

from __future__ import annotations

import os
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def shout(text: str) -> str:
    return f"{text.upper()} (from pid {os.getpid()})"


@workflow.defn
class ShoutWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(shout, text, start_to_close_timeout=timedelta(seconds=10))
