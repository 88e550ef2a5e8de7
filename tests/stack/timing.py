"""Timing one awaited call, for the tests that print (and bound) how long another client waited."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
    started = time.monotonic()
    result = await call()
    return result, time.monotonic() - started
