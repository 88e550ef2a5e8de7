"""Fault 11: what an attacker or a broken tool can put where jobstream reads: a malformed record on the events
topic must not freeze anyone's stream, and a keys file caught half-written must not turn into UNKNOWN."""

from __future__ import annotations

import asyncio
import json
import secrets

import grpc
from aiokafka import AIOKafkaProducer

from devstack.reliability import Record
from jobstream.keys_store import digest, keys_file
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.event_pb2 import JobEvent
from tests.stack.faults.scenario import STAGES
from tests.stack.job_service_client import Stub, auth, rpc_error, submit
from tests.stack.sse_client import follow_reconnecting, sse_client
from tests.stack.sse_story import check_story


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


async def test_a_keys_file_caught_half_written_keeps_the_keys_read_before(
    stub: Stub, api_key: str, stack: Settings, reliability: Record
) -> None:
    """An editor saving the file in place can be caught half way: calls go on with the keys read before (never
    UNKNOWN, never a refusal of a good key), and what the edit added is in force once it is whole."""
    reliability.fault = "11. API keys file half-written by an editor"
    path = keys_file(stack)
    before = path.read_text()
    new_key = "js_edit_" + secrets.token_urlsafe(12)
    document = json.loads(before)
    document["keys"][digest(new_key)] = "dev"
    whole = json.dumps(document)
    missing = api.GetJobRequest(job_id="job_" + "a" * 26)
    try:
        path.write_text(whole[: len(whole) // 2])  # not atomic, as an editor saving in place
        reliability.inputs += 1
        error = await rpc_error(stub.GetJob(missing, metadata=auth(api_key)))
        assert error.code() == grpc.StatusCode.NOT_FOUND, error  # authenticated with the keys read before
        path.write_text(whole)
        error = await rpc_error(stub.GetJob(missing, metadata=auth(new_key)))
        assert error.code() == grpc.StatusCode.NOT_FOUND, error  # the edit's key works at once
    finally:
        path.write_text(before)
