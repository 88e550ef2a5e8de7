"""Fault 11: what an attacker or a broken tool can put where jobstream reads: a malformed record on the events
topic must not freeze anyone's stream, and a keys file caught half-written must not turn into UNKNOWN."""

from __future__ import annotations

import asyncio

import grpc
from aiokafka import AIOKafkaProducer

from devstack.reliability import Record
from jobstream.keys_store import keys_file
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.event_pb2 import JobEvent
from tests.stack.faults.scenario import STAGES
from tests.stack.helpers import Stub, auth, check_story, follow_reconnecting, rpc_error, sse_client, submit


async def test_malformed_records_on_the_topic_do_not_stop_any_stream(
    stub: Stub, api_key: str, stack: Settings, reliability: Record
) -> None:
    reliability.fault = "11. malformed records written to the events topic mid-stream"
    reply = await submit(stub, api_key, "Noise on the wire", pipeline="drill-slow", max_tokens=40)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    await producer.start()

    async def inject(event: object) -> None:
        if getattr(event, "event", "") == "token" and getattr(event, "json", {}).get("index") == 5:
            key = reply.job_id.encode()
            for value in (b"\xff\xfe garbage", JobEvent(id="not-a-cursor", job_id=reply.job_id).SerializeToString()):
                await producer.send_and_wait(stack.events_topic, value, key=key)
                reliability.inputs += 1

    try:
        async with sse_client() as client:
            followed = await asyncio.wait_for(follow_reconnecting(client, reply.events_url, inject), 120)
    finally:
        await producer.stop()
    reliability.jobs += 1
    reliability.events += len(followed.events)
    story = check_story(reply.job_id, followed.events, STAGES)
    assert story.tokens == 40
    assert followed.connections == 1  # the stream never broke


async def test_a_keys_file_caught_half_written_is_unavailable_not_unknown(
    stub: Stub, api_key: str, stack: Settings, reliability: Record
) -> None:
    reliability.fault = "11. API keys file half-written by an editor"
    path = keys_file(stack)
    whole = path.read_text()
    path.write_text(whole[: len(whole) // 2])  # not atomic, as an editor saving in place
    try:
        reliability.inputs += 1
        error = await rpc_error(stub.GetJob(api.GetJobRequest(job_id="job_" + "a" * 26), metadata=auth(api_key)))
    finally:
        path.write_text(whole)
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error
    assert "API keys" in (error.details() or "")
    assert str(path) not in (error.details() or "")  # where the file is stays in the log
    # Whole again: calls work at once.
    error = await rpc_error(stub.GetJob(api.GetJobRequest(job_id="job_" + "a" * 26), metadata=auth(api_key)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
