"""One call per key at a time, shared by every caller that asks while it runs: a thousand viewers opening one job
at once ask Temporal once, not a thousand times."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class SharedCalls(Generic[Key, Value]):
    def __init__(self, call: Callable[[Key], Awaitable[Value]]) -> None:
        self._call = call
        self._running: dict[Key, asyncio.Future[Value]] = {}

    def __len__(self) -> int:
        return len(self._running)

    async def __call__(self, key: Key) -> Value:
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(self._call(key))
            self._running[key] = running

            def forget(done: asyncio.Future[Value]) -> None:
                if self._running.get(key) is done:
                    del self._running[key]
                if not done.cancelled():
                    done.exception()  # retrieved here, so a failure nobody awaits any more is not logged

            running.add_done_callback(forget)
        # Shielded: one caller leaving (cancelled) must not cancel the call the others wait on.
        return await asyncio.shield(running)
