"""Parts of the bridge's CPU per delivered event that figure 4 cannot see from outside, measured in this process:
the event hub routing records to the watchers of a job with the SSE encoding (over a log in memory: no Kafka, no
sockets), and one small write to a loopback TCP socket (the system call each write to a stream costs).

What figure 4 measures per event, minus these and the Kafka tail's share (measured live), is the per-write cost
of asyncio and the ASGI server: waking the stream's task, its generators, the send through the middleware."""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from jobstream import cursors
from jobstream.event_hub import EventHub
from jobstream.event_log import LogLocator
from jobstream.event_types import EventType
from jobstream.log_reader import LogRecord, Sink
from jobstream.partitioning import partition_of
from jobstream.v1.event_pb2 import JobEvent, JobStarted, TokenEvent
from sse_bridge.sse_encoding import frames_of

JOB = "job_" + "h" * 26
PARTITIONS = 16
FIRST_OFFSET = 1000


@dataclass(frozen=True)
class _Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


class _LogInMemory:
    """A log reader whose tail is whatever `append` hands over."""

    partition_count = PARTITIONS

    def __init__(self) -> None:
        self.sink: Sink | None = None

    async def start(self, sink: Sink) -> None:
        self.sink = sink

    async def stop(self) -> None:
        self.sink = None

    def follow(self, partition: int) -> None:
        pass

    def unfollow(self, partition: int) -> None:
        pass

    async def routed_from(self, partition: int) -> int:
        return FIRST_OFFSET

    async def replay(
        self, job_id: str, partition: int, offset: int, boundary: int, owner: str
    ) -> AsyncIterator[LogRecord]:
        for _ in ():
            yield _Record(partition, offset, None, None)

    def lag(self) -> dict[int, int]:
        return {}


def _records(tokens: int) -> list[_Record]:
    partition = partition_of(JOB, PARTITIONS)
    events = [JobEvent(id=cursors.job_started(), job_id=JOB, type=EventType.JOB_STARTED, job_started=JobStarted())]
    for index in range(tokens):
        token = JobEvent(
            id=cursors.token(0, index), job_id=JOB, type=EventType.TOKEN, token=TokenEvent(index=index, text=" t")
        )
        token.time.GetCurrentTime()
        events.append(token)
    key = JOB.encode()
    return [
        _Record(partition, FIRST_OFFSET + offset, key, event.SerializeToString()) for offset, event in enumerate(events)
    ]


async def hub_us_per_event(watchers: int, tokens: int = 2000) -> float:
    """CPU µs per delivered event: one job, `watchers` watchers, one record routed at a time (as at a
    token rate where every write carries one event), each batch encoded as the bridge encodes it."""
    log = _LogInMemory()

    async def locate(job_id: str) -> LogLocator:
        return LogLocator(partition_of(JOB, PARTITIONS), FIRST_OFFSET)

    async def no_fallback(job_id: str) -> JobEvent | None:
        return None

    hub = EventHub(log, locate, no_fallback)
    await hub.start()
    delivered = 0

    async def watch() -> None:
        nonlocal delivered
        async for batch in hub.watch_batches(JOB):
            frames_of(batch)
            delivered += len(batch)

    tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
    for _ in range(5):
        await asyncio.sleep(0)
    records = _records(tokens)
    assert log.sink is not None
    started = time.process_time()
    for record in records:
        log.sink(record)
        await asyncio.sleep(0)  # the watchers' tasks run
        await asyncio.sleep(0)  # ...and take their batch
    cpu_s = time.process_time() - started
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks)
    await hub.stop()
    return 1e6 * cpu_s / delivered


def loopback_send_us(connections: int = 50, rounds: int = 400, size: int = 220) -> float:
    """CPU µs of the sending thread per small write to one of `connections` loopback TCP connections that a
    reader drains, a write to each per round with a pause between rounds (as token writes come: each wakes its
    reader; back-to-back writes to one socket would cost a fraction of that)."""
    with socket.create_server(("127.0.0.1", 0), backlog=connections) as server:
        readers = [socket.create_connection(server.getsockname()) for _ in range(connections)]
        senders = [server.accept()[0] for _ in range(connections)]
    selector = selectors.DefaultSelector()
    for reader in readers:
        selector.register(reader, selectors.EVENT_READ)
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            for key, _ in selector.select(0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                sock.recv(1 << 16)

    draining = threading.Thread(target=drain, daemon=True)
    draining.start()
    message = b"x" * size
    try:
        cpu_s = 0.0
        for _ in range(rounds):
            started = time.thread_time()
            for sender in senders:
                sender.send(message)
            cpu_s += time.thread_time() - started
            time.sleep(0.001)
        return 1e6 * cpu_s / (rounds * connections)
    finally:
        stop.set()
        draining.join(5.0)
        for sock in (*senders, *readers):
            sock.close()
        selector.close()
