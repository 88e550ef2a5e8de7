"""The job's memo as the workflow writes it: changes gathered during a workflow task and upserted once as it ends
(one durable write, not one per change), and the per-stage records GetJob shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow

from jobstream.job_state import JobMemo, StageRecord, StageState


class MemoBuffer:
    def __init__(self) -> None:
        self._changes: dict[str, Any] = {}
        self.records: list[StageRecord] = []

    def add(self, changes: dict[str, Any]) -> None:
        self._changes |= changes

    def flush(self) -> None:
        """Upsert the changes gathered since the last flush: call before the workflow task ends."""
        if self._changes:
            workflow.upsert_memo(self._changes)
            self._changes = {}

    def update_record(self, index: int, **changes: object) -> None:
        self.records[index] = self.records[index].model_copy(update=changes)

    def records_changes(self) -> dict[str, Any]:
        return JobMemo(stages=self.records).changes()

    def end_running_stage(self, state: StageState, now: datetime, attempts: int = 0) -> None:
        """Record how the running stage ended, when the job ends inside it (failed or cancelled)."""
        for index, record in enumerate(self.records):
            if record.state == StageState.RUNNING:
                update: dict[str, object] = {"state": state, "end_time": now}
                if attempts:
                    update["attempts"] = attempts
                self.update_record(index, **update)
