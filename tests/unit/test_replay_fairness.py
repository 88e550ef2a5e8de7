"""The replay consumers are shared fairly (jobstream/replay_pool.py): one tenant holds at most its share, and
a watcher waits for one, first come first served, as long as it takes, rather than being ended."""

from __future__ import annotations

import asyncio

import pytest

from jobstream.kafka_reader import REPLAY_CONSUMERS, REPLAYS_PER_OWNER
from jobstream.replay_pool import ReplayPool


def pool() -> ReplayPool[str]:
    made: ReplayPool[str] = ReplayPool(REPLAYS_PER_OWNER)
    for n in range(REPLAY_CONSUMERS):
        made.add(f"consumer-{n}")
    return made


async def test_one_tenant_cannot_hold_every_replay_consumer() -> None:
    shared = pool()
    held = [await shared.take("greedy") for _ in range(REPLAYS_PER_OWNER)]
    over_share = asyncio.create_task(shared.take("greedy"))
    await asyncio.sleep(0.05)
    assert not over_share.done()  # waits while consumers are free: they are the other tenants'
    # Another tenant's reconnect does not wait behind the first one's.
    other = await asyncio.wait_for(shared.take("polite"), 0.1)
    shared.give_back(held[0], "greedy")
    again = await asyncio.wait_for(over_share, 0.1)
    for consumer, owner in ((again, "greedy"), (held[1], "greedy"), (other, "polite")):
        shared.give_back(consumer, owner)
    assert len(shared.drain()) == REPLAY_CONSUMERS
    assert shared.held("greedy") == shared.held("polite") == 0


async def test_watchers_wait_as_long_as_it_takes_and_are_served_in_arrival_order() -> None:
    shared = pool()
    held = [(await shared.take(f"tenant-{n}"), f"tenant-{n}") for n in range(REPLAY_CONSUMERS)]
    waiting = []
    for n in range(6):
        waiting.append(asyncio.create_task(shared.take(f"late-{n}")))
        await asyncio.sleep(0)  # each is in line before the next arrives
    await asyncio.sleep(0.3)  # longer than any wait used to be allowed in a test
    assert not any(task.done() for task in waiting)
    assert shared.waiting == 6
    served = []
    for consumer, owner in held:
        shared.give_back(consumer, owner)
        await asyncio.sleep(0)
        served.append(next(n for n, task in enumerate(waiting) if task.done() and n not in served))
    assert served == [0, 1, 2, 3]
    assert shared.waiting == 2


async def test_a_watcher_that_leaves_while_waiting_leaves_the_line_and_loses_nothing() -> None:
    shared = pool()
    held = [(await shared.take(f"tenant-{n}"), f"tenant-{n}") for n in range(REPLAY_CONSUMERS)]
    leaving = asyncio.create_task(shared.take("leaving"))
    staying = asyncio.create_task(shared.take("staying"))
    await asyncio.sleep(0)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    shared.give_back(*held[0])
    assert await asyncio.wait_for(staying, 0.1) == held[0][0]
    # Handed a consumer in the same instant it left: the consumer goes back, not astray.
    late = asyncio.create_task(shared.take("late"))
    await asyncio.sleep(0)
    shared.give_back(*held[1])  # resolves late's wait ...
    late.cancel()  # ... which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await late
    assert shared.held("late") == 0
    assert len(shared.drain()) == 1
