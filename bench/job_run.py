"""One job measured end to end: submit, read its SSE stream to the terminal event, keep every timestamp."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.common import Context, stamp_of
from bench.sse import Received, read_events
from jobstream.event_types import EventType


@dataclass(frozen=True)
class Token:
    index: int
    stamped: float  # the GPU worker's stamp, right after Triton handed it the token
    received: float  # at the SSE client
    event_id: str


@dataclass(frozen=True)
class JobRun:
    job_id: str
    submitted: float  # time.time() just before SubmitJob was called
    replied: float  # SubmitJob returned
    events: list[Received]

    @property
    def tokens(self) -> list[Token]:
        tokens = []
        for event in self.events:
            if event.event == EventType.TOKEN:
                data = event.json
                tokens.append(Token(int(data["index"]), stamp_of(data["time"]), event.received, event.id))
        return tokens

    @property
    def succeeded(self) -> bool:
        return bool(self.events) and self.events[-1].event == EventType.JOB_COMPLETED


async def run_job(
    ctx: Context,
    pipeline: str,
    max_tokens: int,
    *,
    on_reply: Callable[[str], None] | None = None,
    timeout_s: float = 120.0,
) -> JobRun:
    """Submit, then connect at once (as a browser does after SubmitJob) and read to the end.

    `on_reply(job_id)` runs as soon as SubmitJob answers (before connecting), e.g. to tell a Kafka tap.
    """
    submitted = time.time()
    reply = await ctx.submit(pipeline, max_tokens)
    replied = time.time()
    if on_reply is not None:
        on_reply(reply.job_id)
    events = await read_events(reply.events_url, timeout_s=timeout_s, ca_file=ctx.settings.server_ca_file)
    run = JobRun(reply.job_id, submitted, replied, events)
    if not run.succeeded or len(run.tokens) != max_tokens:
        raise RuntimeError(f"job {reply.job_id} did not stream {max_tokens} tokens: {[e.event for e in events]}")
    return run
