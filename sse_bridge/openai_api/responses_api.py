"""The Responses API: `POST /v1/responses`, `GET /v1/responses/{id}` (`?stream=true[&starting_after=N]`),
`POST /v1/responses/{id}/cancel` and `DELETE /v1/responses/{id}`, each over the response's job."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jobstream.v1.job_pb2 import Job, JobStatus
from sse_bridge.openai_api import ids
from sse_bridge.openai_api.create_request import ResponseRequest
from sse_bridge.openai_api.errors import invalid, no_retry
from sse_bridge.openai_api.framing import typed_frame
from sse_bridge.openai_api.response_object import message, response, status_of_end
from sse_bridge.openai_api.response_story import ResponseStory
from sse_bridge.openai_api.surface import Caller, Surface

STATUS = {
    JobStatus.JOB_STATUS_QUEUED: "queued",
    JobStatus.JOB_STATUS_RUNNING: "in_progress",
    JobStatus.JOB_STATUS_FAILED: "failed",
    JobStatus.JOB_STATUS_CANCELLED: "cancelled",
}
TERMINAL = {JobStatus.JOB_STATUS_SUCCEEDED, JobStatus.JOB_STATUS_FAILED, JobStatus.JOB_STATUS_CANCELLED}
MAX_RESULT_BYTES = 64 * 1024 * 1024
CANCEL_WAIT_S = 30.0


def story_of(job: Job) -> ResponseStory:
    return ResponseStory(job.job_id, job.pipeline, job.create_time.seconds, dict(job.metadata))


async def story_frames(surface: Surface, job: Job, caller: Caller, after: int) -> AsyncGenerator[bytes]:
    job_id, story = job.job_id, story_of(job)
    async with contextlib.aclosing(surface.story(job_id, caller.tenant)) as events:
        async for event in events:
            frames = [typed_frame(e) for e in story.events(event) if e["sequence_number"] > after]
            if story.ended:
                await surface.closed(job_id)
            if frames:
                yield b"".join(frames)


async def final_response(surface: Surface, job: Job, caller: Caller) -> dict[str, Any]:
    """The response once its job has ended, as the story's last event carries it."""
    job_id, story, last = job.job_id, story_of(job), None
    async with contextlib.aclosing(surface.story(job_id, caller.tenant)) as events:
        async for event in events:
            for translated in story.events(event):
                last = translated
    assert last is not None, "a story ends with its terminal event"
    await surface.closed(job_id)
    return dict(last["response"])


async def result_text(job: Job) -> str:
    if job.HasField("result_url"):  # claim-checked: read back from the payload store
        async with httpx.AsyncClient(timeout=30.0) as client:
            fetched = await client.get(job.result_url)
            fetched.raise_for_status()
            return fetched.content[:MAX_RESULT_BYTES].decode("utf-8", errors="replace")
    return job.result_text


async def response_of(surface: Surface, caller: Caller, job: Job) -> dict[str, Any]:
    """A response as GET answers it: a completed one with its whole result (read back from the payload store when
    it was claim-checked); a failed or cancelled one as its stream's last event says, with the text it had; a
    running one without output yet."""
    created = job.create_time.seconds
    rid = ids.response_id(job.job_id)
    if job.status == JobStatus.JOB_STATUS_SUCCEEDED:
        status = status_of_end(job.finish_reason)
        item_status = "completed" if status == "completed" else "incomplete"
        item = message(ids.message_id(job.job_id), await result_text(job), item_status)
        return response(rid, created, job.pipeline, status, [item], job.usage, metadata=dict(job.metadata))
    if job.status in TERMINAL:
        return await final_response(surface, job, caller)
    return response(rid, created, job.pipeline, STATUS[job.status], [], metadata=dict(job.metadata))


def surface_of(request: Request) -> Surface:
    surface: Surface = request.app.state.openai
    return surface


async def create(request: Request) -> Response:
    surface = surface_of(request)
    caller = surface.caller(request)
    if isinstance(caller, Response):
        return caller
    body = await surface.body(request, ResponseRequest)
    if isinstance(body, Response):
        return body
    submit = surface.job_request(request, body.model, body.messages(), body, body.max_output_tokens)
    if isinstance(submit, Response):
        return submit
    # Admitted before the job exists (a refusal the SDKs retry must leave none behind): a stream, or a request
    # that waits for its job's end, watches the story as a stream does.
    ticket = surface.admit(caller) if body.stream or not body.background else None
    if isinstance(ticket, Response):
        return ticket
    reply = await surface.submit(caller, submit)
    job = await surface.job(caller, reply.job_id) if not isinstance(reply, Response) else reply
    if isinstance(job, Response):
        if ticket is not None:
            ticket.release()
        return job if isinstance(reply, Response) else no_retry(job)
    if ticket is None:  # background (an idempotent retry may find its job long started, or ended)
        queued = job.status == JobStatus.JOB_STATUS_QUEUED
        return JSONResponse(story_of(job).queued() if queued else await response_of(surface, caller, job))
    if body.stream:  # in the background or not
        return surface.stream(ticket, story_frames(surface, job, caller, -1))
    try:
        return JSONResponse(await final_response(surface, job, caller))
    finally:
        ticket.release()


async def owned_job(request: Request) -> tuple[Surface, Caller, Job] | Response:
    surface = surface_of(request)
    found = await surface.owned(request, "response_id", ids.RESPONSE_PREFIX, "response")
    return found if isinstance(found, Response) else (surface, *found)


async def retrieve(request: Request) -> Response:
    found = await owned_job(request)
    if isinstance(found, Response):
        return found
    surface, caller, job = found
    if request.query_params.get("stream", "").lower() != "true":
        return await surface.holding(caller, lambda: respond(surface, caller, job))
    after_text = request.query_params.get("starting_after", "-1")
    try:
        after = int(after_text)
    except ValueError:
        return invalid("starting_after must be an integer sequence number.", "starting_after")
    ticket = surface.admit(caller)
    if isinstance(ticket, Response):
        return ticket
    return surface.stream(ticket, story_frames(surface, job, caller, after))


async def cancel(request: Request) -> Response:
    """Cancels a response that has not ended: answered once the job has ended, with what it truly ended as (a
    response that completed before the cancel took effect is a 400, never reported cancelled)."""
    found = await owned_job(request)
    if isinstance(found, Response):
        return found
    surface, caller, job = found
    if job.status not in TERMINAL:
        cancelled = await surface.cancel(caller, job.job_id)
        if isinstance(cancelled, Response):
            return cancelled
        waited = await surface.holding(caller, lambda: wait_for_end(surface, caller, job.job_id))
        if waited.status_code != 204:
            return waited
        ended = await surface.job(caller, job.job_id)
        if isinstance(ended, Response):
            return ended
        job = ended
    if job.status not in (JobStatus.JOB_STATUS_CANCELLED, JobStatus.JOB_STATUS_RUNNING):
        ended_as = "completed" if job.status == JobStatus.JOB_STATUS_SUCCEEDED else STATUS.get(job.status, "ended")
        return invalid(f"Cannot cancel a response that has already ended ({ended_as}).")
    return await surface.holding(caller, lambda: respond(surface, caller, job))


async def respond(surface: Surface, caller: Caller, job: Job) -> Response:
    return JSONResponse(await response_of(surface, caller, job))


async def wait_for_end(surface: Surface, caller: Caller, job_id: str) -> Response:
    """204 once the job has ended, or after CANCEL_WAIT_S (then it is answered with how it stands)."""
    with contextlib.suppress(TimeoutError):
        async with (
            asyncio.timeout(CANCEL_WAIT_S),
            contextlib.aclosing(surface.story(job_id, caller.tenant)) as events,
        ):
            async for _ in events:
                pass
        await surface.closed(job_id)
    return Response(status_code=204)


async def delete(request: Request) -> Response:
    found = await owned_job(request)
    if isinstance(found, Response):
        return found
    surface, _, job = found
    if job.status not in TERMINAL:
        return invalid("Cannot delete a response that has not ended: cancel it first.")
    await surface.forget(job.job_id)
    return JSONResponse({"id": ids.response_id(job.job_id), "object": "response", "deleted": True})


def routes() -> list[Route]:
    return [
        Route("/v1/responses", create, methods=["POST"]),
        Route("/v1/responses/{response_id}", retrieve, methods=["GET"]),
        Route("/v1/responses/{response_id}", delete, methods=["DELETE"]),
        Route("/v1/responses/{response_id}/cancel", cancel, methods=["POST"]),
    ]
