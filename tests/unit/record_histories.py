"""Record the committed workflow histories that tests/unit/test_replay_offline.py replays without servers.

Usage (against a running stack: `jobstream up`, or the alternate ports of your shell):
    scripts/record-histories [LABEL]

Runs one small job of each listed pipeline and writes its Temporal history as JSON to
tests/unit/histories/<pipeline>[-LABEL].json. Re-record only on purpose: the committed histories stand for
jobs that were already running when the workflow code changed, so a change that makes them fail to replay
needs `workflow.patched()` (or a new workflow type), not a fresh recording. A new workflow type adds histories
under a label of its own (`v2`: PipelineWorkflowV2), beside the older type's.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import grpc

from jobstream.auth import ensure_dev_key
from jobstream.settings import get_settings
from jobstream.temporal_client import connect
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import GenerationParams, JobStatus
from jobstream.v1.job_service_pb2_grpc import JobServiceStub

HISTORIES = Path(__file__).resolve().parent / "histories"
PIPELINES = ("generate", "generate-keywords")
PROMPT = "It is a truth universally acknowledged"


async def record(pipeline: str, label: str = "") -> Path:
    settings = get_settings()
    metadata = (("authorization", f"Bearer {ensure_dev_key(settings)}"),)
    client = await connect(settings)
    async with grpc.aio.insecure_channel(settings.grpc_target) as channel:
        stub = JobServiceStub(channel)
        request = api.SubmitJobRequest(
            pipeline=pipeline, prompt=PROMPT, params=GenerationParams(max_tokens=12, seed=1, temperature=0.8)
        )
        response: api.SubmitJobResponse = await stub.SubmitJob(request, metadata=metadata)
        deadline = time.monotonic() + 120
        while True:
            reply: api.GetJobResponse = await stub.GetJob(api.GetJobRequest(job_id=response.job_id), metadata=metadata)
            if reply.job.status == JobStatus.JOB_STATUS_SUCCEEDED:
                break
            if reply.job.status != JobStatus.JOB_STATUS_RUNNING and reply.job.status != JobStatus.JOB_STATUS_QUEUED:
                raise SystemExit(f"{pipeline}: job {response.job_id} ended {JobStatus.Name(reply.job.status)}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{pipeline}: job {response.job_id} did not finish in 120 s")
            await asyncio.sleep(0.2)
    history = await client.get_workflow_handle(response.job_id).fetch_history()
    path = HISTORIES / (f"{pipeline}-{label}.json" if label else f"{pipeline}.json")
    path.write_text(json.dumps(history.to_json_dict(), indent=1, sort_keys=True) + "\n")
    return path


async def main() -> None:
    HISTORIES.mkdir(exist_ok=True)
    label = sys.argv[1] if len(sys.argv) > 1 else ""
    for pipeline in PIPELINES:
        print(await record(pipeline, label), file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
