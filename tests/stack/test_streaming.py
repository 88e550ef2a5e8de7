"""Token streaming over SSE and WatchJob against the real stack: live delivery, late clients, resume, parity,
and the CLI's `--follow` / `follow`."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import grpc
import pytest

from jobstream.event_log import event_data
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import JobStatus
from jobstream.v1.job_service_pb2_grpc import JobServiceStub
from tests.stack.job_service_client import Stub, auth, get_job, submit, wait_terminal
from tests.stack.sse_client import events_url, read_stream, sse_client, sse_connect
from tests.stack.sse_parser import SseEvent
from tests.stack.sse_story import check_story

STAGES = ["preprocess", "generate", "postprocess"]


@pytest.fixture(scope="module")
async def stub(stack: Settings) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(stack.grpc_target) as channel:
        yield JobServiceStub(channel)


def event_time(event: SseEvent) -> float:
    return datetime.fromisoformat(event.json["time"]).timestamp()


def comparable(events: list[SseEvent]) -> list[tuple[str | None, str, dict[str, Any]]]:
    return [(event.id, event.event, event.json) for event in events]


async def test_first_token_reaches_the_client_while_the_job_is_still_generating(
    stub: Stub, api_key: str, stack: Settings
) -> None:
    reply = await submit(stub, api_key, "It is a truth universally acknowledged", pipeline="drill-slow", max_tokens=60)
    events: list[SseEvent] = []
    status_at_first_token: int | None = None
    url = events_url(stack.bridge_url, reply.job_id, reply.stream_token)
    async with sse_client() as client, asyncio.timeout(120), sse_connect(client, url) as connection:
        assert connection.response.status_code == 200
        async for event in connection.events():
            events.append(event)
            if event.event == "token" and status_at_first_token is None:
                status_at_first_token = (await get_job(stub, api_key, reply.job_id)).status
    story = check_story(reply.job_id, events, STAGES)
    assert story.tokens == 60
    tokens = [event for event in events if event.event == "token"]
    # The GPU worker stamped the last token after the client already held the first one: streamed, not batched.
    assert tokens[0].received < event_time(tokens[-1]), (tokens[0].received, tokens[-1].json["time"])
    assert status_at_first_token == JobStatus.JOB_STATUS_RUNNING
    # And the client got the tokens spread over the generation, not in one burst at the end.
    assert tokens[-1].received - tokens[0].received > 0.5 * (event_time(tokens[-1]) - event_time(tokens[0]))


async def test_a_late_client_gets_the_whole_story_exactly_once(stub: Stub, api_key: str, stack: Settings) -> None:
    reply = await submit(stub, api_key, "The late reader arrives", max_tokens=40)
    job = await wait_terminal(stub, api_key, reply.job_id)
    assert job.status == JobStatus.JOB_STATUS_SUCCEEDED
    async with sse_client() as client:
        events = await read_stream(client, reply.events_url)
        again = await read_stream(client, events_url(stack.bridge_url, reply.job_id, reply.stream_token))
    story = check_story(reply.job_id, events, STAGES)
    assert story.tokens == 40
    assert story.text == story.result_text == job.result_text
    assert comparable(again) == comparable(events)  # the replay is deterministic
    assert events[-1].event == "job.completed"
    assert events[-1].id == "999.9.0000000"


async def test_reconnect_mid_stream_resumes_exactly_after_the_last_event(
    stub: Stub, api_key: str, stack: Settings
) -> None:
    reply = await submit(stub, api_key, "Dropped in the middle of the night", pipeline="drill-slow", max_tokens=60)
    url = events_url(stack.bridge_url, reply.job_id, reply.stream_token)
    async with sse_client() as client, asyncio.timeout(120):
        head: list[SseEvent] = []
        async with sse_connect(client, url) as connection:
            async for event in connection.events():
                head.append(event)
                if event.event == "token" and event.json["index"] == 10:
                    break
        # The connection is gone; the job is still generating while both clients come back.
        assert (await get_job(stub, api_key, reply.job_id)).status == JobStatus.JOB_STATUS_RUNNING
        last = head[-1].id
        assert last is not None
        by_header, by_query = await asyncio.gather(
            read_stream(client, url, headers={"last-event-id": last}),
            read_stream(client, events_url(stack.bridge_url, reply.job_id, reply.stream_token, after=last)),
        )
        full = await read_stream(client, url)
    story = check_story(reply.job_id, full, STAGES)
    assert story.tokens == 60
    assert story.text == story.result_text
    k = len(head)
    assert comparable(head) == comparable(full[:k])
    assert comparable(by_header) == comparable(full[k:])
    assert comparable(by_query) == comparable(full[k:])
    assert by_header[0].event == "token"
    assert by_header[0].json["index"] == 11
    # Some of the resumed events really were live: generated after the reconnect.
    assert event_time(by_header[-1]) > head[-1].received


async def test_resume_from_every_kind_of_event_of_a_finished_job(stub: Stub, api_key: str, stack: Settings) -> None:
    reply = await submit(stub, api_key, "Resume from anywhere", max_tokens=12)
    await wait_terminal(stub, api_key, reply.job_id)
    url = events_url(stack.bridge_url, reply.job_id, reply.stream_token)
    async with sse_client() as client:
        full = await read_stream(client, url)
        cut_points = [0, 1, 3, 4 + 5, len(full) - 3, len(full) - 2]  # started, stage events, a token, the end
        for k in cut_points:
            last = full[k].id
            assert last is not None
            resumed = await read_stream(client, url, headers={"last-event-id": last})
            assert comparable(resumed) == comparable(full[k + 1 :]), f"after {last}"
        # After the terminal event there is nothing more: 204 No Content, which makes EventSource stop.
        ended = await client.get(url, headers={"last-event-id": full[-1].id or ""})
        assert (ended.status_code, ended.content) == (204, b"")


async def watch(stub: Stub, api_key: str, job_id: str, after: str = "") -> list[Any]:
    responses = stub.WatchJob(api.WatchJobRequest(job_id=job_id, after=after), metadata=auth(api_key), timeout=120)
    return [response.event async for response in responses]


async def test_watch_job_matches_sse_event_for_event(stub: Stub, api_key: str, stack: Settings) -> None:
    reply = await submit(stub, api_key, "Two doors to the same room", max_tokens=30)
    url = events_url(stack.bridge_url, reply.job_id, reply.stream_token)
    async with sse_client() as client:
        # Both live, side by side, from the start.
        sse, grpc_events = await asyncio.gather(read_stream(client, url), watch(stub, api_key, reply.job_id))
        check_story(reply.job_id, sse, STAGES)
        assert [(e.id, e.type, event_data(e)) for e in grpc_events] == [(e.id, e.event, e.json) for e in sse]
        # And the same resume semantics from the same cursor.
        middle = sse[len(sse) // 2].id
        assert middle is not None
        sse_after = await read_stream(client, url, headers={"last-event-id": middle})
    grpc_after = await watch(stub, api_key, reply.job_id, after=middle)
    assert [(e.id, e.type, event_data(e)) for e in grpc_after] == [(e.id, e.event, e.json) for e in sse_after]
    assert [e.id for e in grpc_after] == [e.id for e in sse[len(sse) // 2 + 1 :]]


async def run_cli(*args: str, timeout_s: float = 120) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobstream.cli", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(timeout_s):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_submit_follow_prints_id_tokens_then_status(stub: Stub, api_key: str) -> None:
    started = time.monotonic()
    code, out, err = await run_cli("submit", "It was the best of times", "--max-tokens", "25", "--follow")
    assert code == 0, err
    job_id, _, rest = out.partition("\n")
    assert re.fullmatch(r"job_[a-z2-7]{26}", job_id), out
    job = await get_job(stub, api_key, job_id)
    assert job.status == JobStatus.JOB_STATUS_SUCCEEDED
    assert job.result_text
    assert rest == f"{job.result_text}\nSUCCEEDED\n", (rest, job.result_text)
    assert time.monotonic() - started < 120
    # `follow` on the finished job replays the whole text.
    code, out, err = await run_cli("follow", job_id)
    assert code == 0, err
    assert out == f"{job.result_text}\nSUCCEEDED\n"
