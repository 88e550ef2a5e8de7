"""The replay consumers are shared fairly: one tenant holds at most half of them, and a watcher waits for
one a bounded time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer

from jobstream import event_stream
from jobstream.event_stream import REPLAY_CONSUMERS, REPLAYS_PER_OWNER, EventStream, ReplayBusyError
from jobstream.settings import Settings


async def no_locate(_: str) -> Any:
    return None


def stream(tmp_path: Path) -> EventStream:
    made = EventStream(Settings(state_dir=tmp_path), no_locate, no_locate)
    made._replays = [cast(AIOKafkaConsumer, object()) for _ in range(REPLAY_CONSUMERS)]
    return made


async def test_one_tenant_cannot_hold_every_replay_consumer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_stream, "REPLAY_WAIT_S", 0.2)
    shared = stream(tmp_path)
    held = [await shared._take_replay_consumer("greedy") for _ in range(REPLAYS_PER_OWNER)]
    with pytest.raises(ReplayBusyError):
        await shared._take_replay_consumer("greedy")
    # Another tenant's reconnect does not wait behind the first one's.
    other = await asyncio.wait_for(shared._take_replay_consumer("polite"), 0.1)
    await shared._give_back_replay_consumer(held[0], "greedy")
    again = await asyncio.wait_for(shared._take_replay_consumer("greedy"), 0.1)
    for consumer, owner in ((again, "greedy"), (held[1], "greedy"), (other, "polite")):
        await shared._give_back_replay_consumer(consumer, owner)
    assert len(shared._replays) == REPLAY_CONSUMERS
    assert shared._replaying == {}


async def test_a_watcher_waits_for_a_freed_consumer(tmp_path: Path) -> None:
    shared = stream(tmp_path)
    held = [await shared._take_replay_consumer(f"tenant-{i}") for i in range(REPLAY_CONSUMERS)]
    waiting = asyncio.create_task(shared._take_replay_consumer("late"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await shared._give_back_replay_consumer(held[0], "tenant-0")
    assert await asyncio.wait_for(waiting, 1.0) is held[0]
