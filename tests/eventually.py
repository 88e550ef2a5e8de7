"""The one way a test waits for something: ask again until the answer is what it waits for, or fail saying what
it waited for and the last answer. (A fixed sleep followed by a check cannot tell "not yet" from "never".)"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]] | Callable[[], T],
    until: Callable[[T], object] = bool,
    *,
    within_s: float = 10.0,
    every_s: float = 0.05,
    what: str = "the condition",
) -> T:
    """`probe()` (sync or async) again every `every_s` until `until(answer)` holds; the answer that made it hold.
    AssertionError after `within_s`, naming `what` and the last answer."""
    deadline = time.monotonic() + within_s
    while True:
        answer = probe()
        value: T = await answer if inspect.isawaitable(answer) else answer
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within_s:g} s (last: {value!r})")
        await asyncio.sleep(every_s)
