"""Chat Completions over a job: `POST /v1/chat/completions` (streamed as `chat.completion.chunk`s ending in
`data: [DONE]`, with the usage chunk when `stream_options.include_usage`; or answered once the job ends) and
`GET /v1/chat/completions/{id}`, which answers a finished completion whose stream broke."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jobstream.event_types import TERMINAL_TYPES, EventType
from jobstream.v1.event_pb2 import JobEvent
from jobstream.v1.job_pb2 import JobStatus, Usage
from sse_bridge.openai_api import ids
from sse_bridge.openai_api.create_request import ChatRequest
from sse_bridge.openai_api.errors import invalid, no_retry, openai_error
from sse_bridge.openai_api.framing import DONE, data_frame
from sse_bridge.openai_api.responses_api import result_text, surface_of
from sse_bridge.openai_api.surface import Caller, Surface

FINISH = {"length": "length"}  # anything else the model ended on is a stop


def chat_usage(used: Usage) -> dict[str, int]:
    total = used.prompt_tokens + used.output_tokens
    return {"prompt_tokens": used.prompt_tokens, "completion_tokens": used.output_tokens, "total_tokens": total}


def completion(job_id: str, created: int, model: str, text: str, finish_reason: str, used: Usage) -> dict[str, Any]:
    return {
        "id": ids.chat_id(job_id),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                "finish_reason": FINISH.get(finish_reason, "stop"),
                "logprobs": None,
            }
        ],
        "usage": chat_usage(used),
    }


class ChunkStory:
    """A job's story as chat.completion.chunk payloads (and the error that ends a failed or cancelled one)."""

    def __init__(self, job_id: str, model: str, include_usage: bool) -> None:
        self.job_id, self.model, self.include_usage = job_id, model, include_usage
        self.created = 0
        self.text: list[str] = []

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": ids.chat_id(self.job_id),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def payloads(self, event: JobEvent) -> list[Any]:
        match event.type:
            case EventType.JOB_STARTED:
                self.created = event.time.seconds
                return [self._chunk({"role": "assistant", "content": ""})]
            case EventType.TOKEN:
                self.text.append(event.token.text)
                return [self._chunk({"content": event.token.text})]
            case EventType.JOB_COMPLETED:
                done = event.job_completed
                final = [self._chunk({}, FINISH.get(done.finish_reason, "stop"))]
                if self.include_usage:
                    final.append({**self._chunk({}), "choices": [], "usage": chat_usage(done.usage)})
                return final
            case EventType.JOB_FAILED:
                return [{"error": {"message": event.job_failed.error.message, "type": "server_error", "code": None}}]
            case EventType.JOB_CANCELLED:
                return [
                    {"error": {"message": "The completion was cancelled.", "type": "cancelled", "code": "cancelled"}}
                ]
        return []


async def chunk_frames(surface: Surface, job_id: str, caller: Caller, model: str, usage: bool) -> AsyncGenerator[bytes]:
    story = ChunkStory(job_id, model, usage)
    async with contextlib.aclosing(surface.story(job_id, caller.tenant)) as events:
        async for event in events:
            payloads = story.payloads(event)
            if event.type in TERMINAL_TYPES:
                await surface.closed(job_id)
            if payloads:
                ok = event.type == EventType.JOB_COMPLETED
                yield b"".join(data_frame(p) for p in payloads) + (DONE if ok else b"")


async def create(request: Request) -> Response:
    surface = surface_of(request)
    caller = surface.caller(request)
    if isinstance(caller, Response):
        return caller
    body = await surface.body(request, ChatRequest)
    if isinstance(body, Response):
        return body
    submit = surface.job_request(
        request, body.model, body.messages, body, body.max_completion_tokens or body.max_tokens
    )
    if isinstance(submit, Response):
        return submit
    pipeline = submit.pipeline
    ticket = surface.admit(caller)  # before the job exists: a refusal the SDKs retry leaves none behind
    if isinstance(ticket, Response):
        return ticket
    reply = await surface.submit(caller, submit)
    if isinstance(reply, Response):
        ticket.release()
        return reply
    if body.stream:
        usage = body.stream_options is not None and body.stream_options.include_usage
        return surface.stream(ticket, chunk_frames(surface, reply.job_id, caller, pipeline, usage))
    try:
        return await whole(surface, caller, reply.job_id, pipeline)
    finally:
        ticket.release()


async def whole(surface: Surface, caller: Caller, job_id: str, pipeline: str) -> Response:
    """The completion once its job has ended."""
    story, last = ChunkStory(job_id, pipeline, False), JobEvent()
    async with contextlib.aclosing(surface.story(job_id, caller.tenant)) as events:
        async for event in events:
            story.payloads(event)
            last = event
    await surface.closed(job_id)
    if last.type != EventType.JOB_COMPLETED:
        # The job ran and failed (or was cancelled): the SDKs' retry would submit another, so not retried.
        failed = openai_error(502, "The model did not complete this request.", kind="server_error", code=last.type)
        return no_retry(failed)
    done = last.job_completed
    return JSONResponse(
        completion(job_id, story.created, pipeline, "".join(story.text), done.finish_reason, done.usage)
    )


async def retrieve(request: Request) -> Response:
    found = await surface_of(request).owned(request, "completion_id", ids.CHAT_PREFIX, "chat completion")
    if isinstance(found, Response):
        return found
    _, job = found
    if job.status != JobStatus.JOB_STATUS_SUCCEEDED:
        return invalid(f"The chat completion has not finished successfully (it is {JobStatus.Name(job.status)}).")
    text = await result_text(job)
    return JSONResponse(
        completion(job.job_id, job.create_time.seconds, job.pipeline, text, job.finish_reason, job.usage)
    )


def routes() -> list[Route]:
    return [
        Route("/v1/chat/completions", create, methods=["POST"]),
        Route("/v1/chat/completions/{completion_id}", retrieve, methods=["GET"]),
    ]
