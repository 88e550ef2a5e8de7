"""Running Hypothesis against the live stack from an async test, and keeping count of what it tried.

Hypothesis drives a plain function; each generated case is handed to the test's event loop and awaited
there, so the gRPC channels and HTTP clients the test opened are the ones the cases use.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

T = TypeVar("T")
CASE_TIMEOUT_S = 120.0


@dataclass
class FuzzLog:
    """What the fuzzer tried and what came back."""

    cases: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    accepted: set[str] = field(default_factory=set)  # job ids of requests the service accepted

    def answer(self, code: str) -> None:
        self.cases += 1
        self.answers[code] += 1

    def summary(self) -> str:
        return ", ".join(f"{code} {count}" for code, count in sorted(self.answers.items()))


def examples(full: bool, reduced: int, whole: int = 2000) -> int:
    return whole if full else reduced


async def fuzz(
    strategy: st.SearchStrategy[T], check: Callable[[T], Coroutine[Any, Any, None]], count: int, full: bool
) -> None:
    """Run `check` on `count` cases drawn from `strategy`; a failing case is shrunk and re-raised.

    Reduced runs (CI) are derandomized, so a failure there reproduces; full runs explore new cases each time.
    """
    loop = asyncio.get_running_loop()

    @settings(
        max_examples=count,
        deadline=None,
        derandomize=not full,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(strategy)
    def case(value: Any) -> None:
        asyncio.run_coroutine_threadsafe(check(value), loop).result(timeout=CASE_TIMEOUT_S)

    await asyncio.to_thread(case)
