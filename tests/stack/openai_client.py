"""The official openai SDK pointed at the local stack's bridge, lenient and strict, and what the tests read
from its streams."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from openai import AsyncOpenAI

from jobstream.settings import Settings

PROMPT = "It is a truth universally acknowledged"


@contextlib.asynccontextmanager
async def openai_client(settings: Settings, api_key: str, *, strict: bool = False) -> AsyncIterator[AsyncOpenAI]:
    # No retries of the SDK's own: a test sees every answer the server gives.
    client = AsyncOpenAI(
        base_url=f"{settings.bridge_url}/v1", api_key=api_key, max_retries=0, _strict_response_validation=strict
    )
    async with client:
        yield client


@dataclass
class Seen:
    """What a Responses stream delivered: its events' types and numbers, the text of its deltas."""

    types: list[str] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    deltas: list[str] = field(default_factory=list)
    response_id: str = ""
    last: Any = None

    def add(self, event: Any) -> None:
        if not self.response_id and hasattr(event, "response"):
            self.response_id = event.response.id
        self.types.append(event.type)
        self.numbers.append(event.sequence_number)
        if event.type == "response.output_text.delta":
            self.deltas.append(event.delta)
        self.last = event


async def read_all(events: AsyncIterator[Any], seen: Seen | None = None, stop_after: int | None = None) -> Seen:
    """Reads a stream to its end, or until the event numbered `stop_after` (then leaves it, as a client that
    lost its connection)."""
    seen = seen or Seen()
    iterator = aiter(events)
    try:
        async for event in iterator:
            seen.add(event)
            if stop_after is not None and event.sequence_number >= stop_after:
                break
    finally:
        # Closed here, not by the garbage collector at some later moment (which can find it still running).
        if (close := getattr(iterator, "aclose", None)) is not None:
            await close()
    return seen
