"""After losing Triton or Kafka, an attempt waits (heartbeating) until it is back before it fails.

A restarting server refuses connections for many seconds; without this wait the retries (1 s, 2 s, 4 s apart)
would all fail at once against it and exhaust the stage's attempts in one outage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from temporalio import activity

from jobstream.connections import kafka_options
from jobstream.settings import Settings

# How long an attempt that lost Triton or Kafka waits for it to come back before it fails (and is retried).
DEPENDENCY_WAIT_S = 60.0
CHECK_TIMEOUT_S = 2.0
CHECK_EVERY_S = 0.5


async def wait_until_back(name: str, check: Callable[[], Awaitable[bool]], details: Any) -> None:
    """Until `check()` says `name` is back (or DEPENDENCY_WAIT_S), heartbeating `details` around each check."""
    deadline = time.monotonic() + DEPENDENCY_WAIT_S
    while time.monotonic() < deadline:
        activity.heartbeat(details)
        if await within(check(), timeout_s=CHECK_TIMEOUT_S):
            return
        activity.heartbeat(details)
        await asyncio.sleep(CHECK_EVERY_S)
    activity.logger.warning("%s still unreachable after %.0f s", name, DEPENDENCY_WAIT_S)


async def within(check: Awaitable[bool], timeout_s: float) -> bool:
    """The check's answer, or False if it has none within `timeout_s`. A check that hangs (a stopped server)
    is cancelled but not waited for: its clean-up must not hold up the caller's heartbeats."""
    task = asyncio.ensure_future(check)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if task not in done:
        task.cancel()
        task.add_done_callback(lambda finished: finished.cancelled() or finished.exception())
        return False
    return task.exception() is None and bool(task.result())


async def kafka_reachable(settings: Settings) -> bool:
    """A metadata request answered: the broker is up and knows the events topic."""
    client = AIOKafkaClient(**kafka_options(settings), request_timeout_ms=2000)
    try:
        await client.bootstrap()
        return bool(client.cluster.partitions_for_topic(settings.events_topic))
    except KafkaError:
        return False
    finally:
        await client.close()
