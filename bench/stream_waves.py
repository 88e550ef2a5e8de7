"""Opening thousands of SSE streams from one asyncio process (figures 4 and 9): in waves of WAVE, each wave
waiting until its streams have answered 200 (or failed) before the next starts. Thousands of connects at once
would overflow the bridge's listen backlog and measure SYN retries, not the bridge."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from bench.sse import Received, SseError, read_events

WAVE = 500  # connections opened at once; the next wave waits until these answered

# What one stream read: its events, or why it failed or timed out.
StreamResult = list[Received] | Exception


async def _read_stream(url: str, limit_s: float, opened: asyncio.Event) -> StreamResult:
    try:
        return await read_events(url, timeout_s=limit_s, opened=opened)
    except (TimeoutError, OSError, SseError) as exc:
        return exc
    finally:
        opened.set()  # a failed stream counts as settled, or the level would wait for it forever


@contextlib.asynccontextmanager
async def opened_in_waves(urls: list[str], limit_s: float) -> AsyncIterator[list[asyncio.Task[StreamResult]]]:
    """A task reading each URL's stream (for up to limit_s), started a wave at a time; yields them all once every
    stream has answered, and cancels whichever still run on exit."""
    opened = [asyncio.Event() for _ in urls]
    tasks: list[asyncio.Task[StreamResult]] = []
    try:
        for first in range(0, len(urls), WAVE):
            wave = list(zip(urls[first : first + WAVE], opened[first : first + WAVE], strict=True))
            tasks += [asyncio.create_task(_read_stream(url, limit_s, event)) for url, event in wave]
            await asyncio.gather(*(event.wait() for _, event in wave))
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
