"""The `jobstream` command: submit, follow, inspect, list and cancel jobs; the local stack and the benchmark
add their own subcommands (`up`, `reliability`, `bench`) through entry points."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from google.protobuf import json_format

from jobstream.auth import add_key, dev_key
from jobstream.connections import job_service_channel
from jobstream.event_log import event_data
from jobstream.event_types import TERMINAL_TYPES, EventType
from jobstream.job_state import Status
from jobstream.keys_store import remove_key
from jobstream.settings import get_settings
from jobstream.subcommands import Subcommand, subcommands
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.event_pb2 import JobEvent
from jobstream.v1.job_pb2 import GenerationParams, Job, JobStatus, StageState
from jobstream.v1.job_service_pb2_grpc import JobServiceStub

NO_KEY = (
    "jobstream: no API key: set JOBSTREAM_API_KEY (on the local stack, `jobstream up` creates the development "
    "key, and this command then finds it)"
)


def api_key() -> str:
    """JOBSTREAM_API_KEY, else the local stack's development key; a key is never created here, so a CLI pointed
    at a real deployment cannot add one to its keys file."""
    key = os.environ.get("JOBSTREAM_API_KEY") or dev_key(get_settings())
    if not key:
        raise SystemExit(NO_KEY)
    return key


def manage_keys(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.keys_command == "add":
        try:
            print(add_key(settings, args.tenant))
        except ValueError as exc:
            raise SystemExit(f"jobstream keys add: {exc}") from None
        return 0
    remove_key(settings, args.key)
    return 0


def metadata() -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key()}"),)


FINAL_STATUS = {
    EventType.JOB_COMPLETED: Status.SUCCEEDED,
    EventType.JOB_FAILED: Status.FAILED,
    EventType.JOB_CANCELLED: Status.CANCELLED,
}


def status_name(status: int) -> str:
    return JobStatus.Name(status).removeprefix("JOB_STATUS_")


def job_json(job: Job) -> dict[str, Any]:
    return json_format.MessageToDict(job, preserving_proto_field_name=True)


def print_job(job: Job, as_json: bool) -> None:
    if as_json:
        print(json.dumps(job_json(job)))
        return
    line = f"{job.job_id}  {status_name(job.status):9}  {job.pipeline:18} stage={job.stage or '-'}"
    line += f" progress={job.progress:.0%} tokens={job.tokens_generated} attempt={job.attempt}"
    print(line)
    if job.finish_reason or job.usage.prompt_tokens:
        usage = job.usage
        print(f"  usage: {usage.prompt_tokens} prompt + {usage.output_tokens} output tokens", end="")
        print(f", finish_reason={job.finish_reason}" if job.finish_reason else "")
    for stage in job.stages:
        state = StageState.Name(stage.state).removeprefix("STAGE_STATE_").lower()
        line = f"  {stage.name:12} {stage.kind:11} {state:9} attempts={stage.attempts}"
        if stage.kind == "model":
            line += f" tokens={stage.tokens_generated} prompt_tokens={stage.prompt_tokens}"
            line += f" finish_reason={stage.finish_reason}" if stage.finish_reason else ""
        if stage.HasField("start_time") and stage.HasField("end_time"):
            seconds = (stage.end_time.ToDatetime() - stage.start_time.ToDatetime()).total_seconds()
            line += f" {seconds:.2f}s"
        print(line)
    if job.HasField("error") and job.error.code:
        print(f"  error: {job.error.code}: {job.error.message}")
    if job.status == JobStatus.JOB_STATUS_CANCELLED and job.cancel_reason:
        print(f"  cancelled: {job.cancel_reason}")
    if job.WhichOneof("result") == "result_text":
        print(f"  result: {job.result_text}")
    elif job.WhichOneof("result") == "result_url":
        print(f"  result: {job.result_url}")


async def follow(stub: JobServiceStub[grpc.aio.Channel], job_id: str, as_json: bool) -> int:
    """Print the job's tokens as they stream, then its final status; exit code 0 only if it succeeded."""
    final: JobEvent | None = None
    async for response in stub.WatchJob(api.WatchJobRequest(job_id=job_id), metadata=metadata()):
        event = response.event
        if as_json:
            print(json.dumps({"id": event.id, **event_data(event)}), flush=True)
        elif event.type == EventType.TOKEN:
            print(event.token.text, end="", flush=True)
        if event.type in TERMINAL_TYPES:
            final = event
    if not as_json:
        print()
        if final is not None:
            # The terminal event is the verdict: GetJob reports RUNNING until the workflow has closed, a
            # moment after it published this event.
            error = final.job_failed.error
            print(
                FINAL_STATUS[EventType(final.type)].value + (f": {error.code}: {error.message}" if error.code else "")
            )
        else:
            job = (await stub.GetJob(api.GetJobRequest(job_id=job_id), metadata=metadata())).job
            print(f"{status_name(job.status)}", end="")
            if job.error.code:
                print(f": {job.error.code}: {job.error.message}", end="")
            print()
    return 0 if final is not None and final.type == EventType.JOB_COMPLETED else 1


SUBMIT_ATTEMPTS = 4
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


async def submit_retrying(stub: Any, request: api.SubmitJobRequest, call_metadata: Any) -> api.SubmitJobResponse:
    """SubmitJob, again after a JobService that went away mid-call: the request always carries an idempotency
    key (one of its own when the user gave none), so a retry of a submit that did start a job gets that job."""
    for attempt in range(1, SUBMIT_ATTEMPTS + 1):
        try:
            reply: api.SubmitJobResponse = await stub.SubmitJob(request, metadata=call_metadata)
            return reply
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in RETRYABLE or attempt == SUBMIT_ATTEMPTS:
                raise
            await asyncio.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def submit_request(args: argparse.Namespace) -> api.SubmitJobRequest:
    params = GenerationParams(max_tokens=args.max_tokens)
    if args.seed is not None:
        params.seed = args.seed
    if args.temperature is not None:
        params.temperature = args.temperature
    if args.top_p is not None:
        params.top_p = args.top_p
    params.stop.extend(args.stop)
    return api.SubmitJobRequest(
        pipeline=args.pipeline,
        prompt=args.prompt,
        params=params,
        idempotency_key=args.idempotency_key or f"cli-{uuid.uuid4().hex}",
    )


async def submit(stub: Any, args: argparse.Namespace) -> int:
    reply = await submit_retrying(stub, submit_request(args), metadata())
    if args.json:
        print(json.dumps(json_format.MessageToDict(reply, preserving_proto_field_name=True)), flush=True)
    else:
        print(reply.job_id, flush=True)
    return await follow(stub, reply.job_id, args.json) if args.follow else 0


async def list_jobs(stub: Any, args: argparse.Namespace) -> int:
    status = (
        getattr(JobStatus, f"JOB_STATUS_{args.status.upper()}") if args.status else JobStatus.JOB_STATUS_UNSPECIFIED
    )
    listing = await stub.ListJobs(api.ListJobsRequest(page_size=args.limit, status=status), metadata=metadata())
    for job in listing.jobs:
        print_job(job, args.json)
    return 0


async def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    async with job_service_channel(settings) as channel:
        stub = JobServiceStub(channel)
        if args.command == "submit":
            return await submit(stub, args)
        if args.command == "follow":
            return await follow(stub, args.job_id, args.json)
        if args.command == "status":
            job = (await stub.GetJob(api.GetJobRequest(job_id=args.job_id), metadata=metadata())).job
            print_job(job, args.json)
            return 0
        if args.command == "cancel":
            cancel = api.CancelJobRequest(job_id=args.job_id, reason=args.reason)
            job = (await stub.CancelJob(cancel, metadata=metadata())).job
            print_job(job, args.json)
            return 0
        if args.command == "list":
            return await list_jobs(stub, args)
    raise AssertionError(args.command)


def parser(extra: Mapping[str, Subcommand]) -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="jobstream", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    for name, subcommand in extra.items():
        subcommand.configure(commands.add_parser(name, help=subcommand.help))
    submit = commands.add_parser("submit", help="submit a job; prints its id first")
    submit.add_argument("prompt")
    submit.add_argument("--pipeline", default="generate")
    submit.add_argument("--max-tokens", type=int, default=64)
    submit.add_argument("--seed", type=int)
    submit.add_argument("--temperature", type=float)
    submit.add_argument("--top-p", type=float, help="nucleus sampling, in (0, 1]")
    submit.add_argument("--stop", action="append", default=[], help="a stop sequence (repeat for more, up to 4)")
    submit.add_argument("--idempotency-key", default="")
    submit.add_argument("--follow", action="store_true", help="stream the tokens, then the final status")
    for name, text in (
        ("follow", "stream a job's events"),
        ("status", "show a job"),
        ("cancel", "cancel a job"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("job_id")
    commands.choices["cancel"].add_argument("--reason", default="", help="reported in job.cancelled and by status")
    listing = commands.add_parser("list", help="list your jobs, newest first")
    listing.add_argument("--status", choices=["queued", "running", "succeeded", "failed", "cancelled"])
    listing.add_argument("--limit", type=int, default=20)
    commands.add_parser("api-key", help="print the key the CLI uses (JOBSTREAM_API_KEY, or the local stack's)")
    keys = commands.add_parser("keys", help="manage the API keys file (run where the JobService reads it)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    key_commands.add_parser(
        "add", help="make a key for TENANT; it is printed once, only its digest is kept"
    ).add_argument("tenant")
    key_commands.add_parser("revoke", help="remove a key (its stream tokens stop working too)").add_argument("key")
    for command in (submit, listing, *(commands.choices[n] for n in ("follow", "status", "cancel"))):
        command.add_argument("--json", action="store_true", help="machine-readable output")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    extra = subcommands()
    args = parser(extra).parse_args(argv)
    if args.command in extra:
        return extra[args.command].run(args)
    if args.command == "api-key":
        print(api_key())
        return 0
    if args.command == "keys":
        return manage_keys(args)
    try:
        return asyncio.run(run(args))
    except grpc.aio.AioRpcError as exc:
        print(f"jobstream {args.command}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`jobstream submit ... --follow | head -1`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
