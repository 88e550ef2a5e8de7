"""One heartbeat ticker for every stage: it beats from one task on a clock, not per token or per step (the SDK
encodes every heartbeat call, although it sends at most one per throttle interval)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from temporalio import activity


@contextlib.asynccontextmanager
async def heartbeat_ticker(details: Callable[[], Sequence[Any] | None], every_s: float) -> AsyncIterator[None]:
    """While the block runs, heartbeat `details()` every `every_s` (None: not yet, skip this beat). A local
    activity cannot heartbeat (its workflow task's timeout is what notices a dead worker): nothing then."""
    if activity.info().is_local:
        yield
        return

    async def beat() -> None:
        while True:
            await asyncio.sleep(every_s)
            now = details()
            if now is not None:
                activity.heartbeat(*now)

    ticker = asyncio.create_task(beat())
    try:
        yield
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
