"""jobstream/event_log.py: a producer that meets a non-retriable error is replaced once, however many sends
met it; a retriable one changes nothing; a replacement that cannot start leaves the old producer in place."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaError, OutOfOrderSequenceNumber
from aiokafka.structs import RecordMetadata

from jobstream.event_log import EventLog
from jobstream.settings import Settings
from jobstream.v1.event_pb2 import JobEvent

EVENT = JobEvent(id="001.1.0000000", job_id="job_" + "a" * 26, type="token")


class Producer:
    def __init__(self, fails_with: KafkaError | None = None, start_fails: bool = False) -> None:
        self.fails_with = fails_with
        self.start_fails = start_fails
        self.stopped = False

    async def start(self) -> None:
        if self.start_fails:
            raise KafkaConnectionError("Kafka is away")

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, *_: object, **__: object) -> asyncio.Future[RecordMetadata]:
        sent: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        if self.fails_with is not None:
            sent.set_exception(self.fails_with)
        else:
            sent.set_result(RecordMetadata("t", 0, None, 7, 0, -1, 0))
        return sent


def event_log(tmp_path: Path, *producers: Producer) -> EventLog:
    made = iter(producers)
    return EventLog(Settings(state_dir=tmp_path), make_producer=lambda: next(made))


async def settle(log: EventLog) -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_many_sends_that_meet_a_wedged_producer_replace_it_once(tmp_path: Path) -> None:
    wedged, fresh = Producer(OutOfOrderSequenceNumber()), Producer()
    log = event_log(tmp_path, wedged, fresh)
    await log.start()
    sends = [await log.send(EVENT) for _ in range(3)]
    for sent in sends:
        with pytest.raises(OutOfOrderSequenceNumber):
            await sent
    await settle(log)
    assert log.renewals == 1
    assert wedged.stopped
    assert (await log.publish(EVENT)).offset == 7  # through the new producer


async def test_a_retriable_error_keeps_the_producer(tmp_path: Path) -> None:
    flaky = Producer(KafkaConnectionError("a broker restarted"))
    log = event_log(tmp_path, flaky)
    await log.start()
    with pytest.raises(KafkaConnectionError):
        await log.publish(EVENT)
    await settle(log)
    assert log.renewals == 0
    assert not flaky.stopped


async def test_a_replacement_that_cannot_start_leaves_the_old_one_to_try_again(tmp_path: Path) -> None:
    wedged = Producer(OutOfOrderSequenceNumber())
    log = event_log(tmp_path, wedged, Producer(start_fails=True), Producer())
    await log.start()
    for _ in range(2):
        with pytest.raises(OutOfOrderSequenceNumber):
            await log.publish(EVENT)
        await settle(log)
    assert log.renewals == 1  # the second failure tried again, and that one started
    assert (await log.publish(EVENT)).offset == 7
