"""Smoke tests proving each server of the local stack is the real one and does its job."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import tritonclient.grpc.aio as triton
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from jobstream.payload_store import PayloadStore
from jobstream.settings import Settings
from jobstream.workflow_io import GenerationParams as StageParams
from tests.stack.smoke_workflow import ShoutWorkflow, shout
from tests.stack.triton_direct import triton_responses, triton_stream
from workers.pipeline.activities.model.triton_vllm import model_inputs


async def test_temporal_round_trips_a_workflow_with_an_activity(temporal_client: Client) -> None:
    queue = f"smoke-{uuid.uuid4().hex[:8]}"
    workflow_id = f"smoke-{uuid.uuid4().hex}"
    async with Worker(temporal_client, task_queue=queue, workflows=[ShoutWorkflow], activities=[shout]):
        result = await temporal_client.execute_workflow(ShoutWorkflow.run, "hello", id=workflow_id, task_queue=queue)
    assert result == f"HELLO (from pid {os.getpid()})"
    # The server persisted the whole story: the activity was scheduled, started and completed.
    history = await temporal_client.get_workflow_handle(workflow_id).fetch_history()
    kinds = [EventType.Name(event.event_type) for event in history.events]
    for expected in ("ACTIVITY_TASK_SCHEDULED", "ACTIVITY_TASK_COMPLETED", "WORKFLOW_EXECUTION_COMPLETED"):
        assert f"EVENT_TYPE_{expected}" in kinds


async def test_kafka_keeps_per_key_order_across_partitions(stack: Settings) -> None:
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    sent: dict[bytes, list[bytes]] = {}
    try:
        for i in range(200):
            key = f"job-{i % 10}".encode()
            value = f"{i}".encode()
            await producer.send(topic, value, key=key)
            sent.setdefault(key, []).append(value)
        await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.kafka_bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=100
    )
    await consumer.start()
    received: dict[bytes, list[bytes]] = {}
    partitions: dict[bytes, set[int]] = {}
    try:
        deadline = time.monotonic() + 30
        while sum(len(v) for v in received.values()) < 200 and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    assert record.key is not None
                    assert record.value is not None
                    received.setdefault(record.key, []).append(record.value)
                    partitions.setdefault(record.key, set()).add(record.partition)
    finally:
        await consumer.stop()
    assert received == sent
    assert all(len(p) == 1 for p in partitions.values()), "one key, one partition"
    assert len(set().union(*partitions.values())) > 1, "keys spread over several partitions"


async def test_minio_serves_a_10_mb_object_through_a_presigned_get(stack: Settings) -> None:
    store = PayloadStore(stack)
    data = os.urandom(10 * 1024 * 1024)
    ref = await store.put("smoke", data)
    url = await store.presigned_get(ref)
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(data).digest()
    async with httpx.AsyncClient(timeout=30) as client:
        tampered = await client.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"))
    assert tampered.status_code == 403


async def test_triton_streams_tokens_one_by_one(stack: Settings) -> None:
    # Written the way vllm_backend's own samples/client.py asks a vLLM model: the local model speaks that.
    client = triton.InferenceServerClient(stack.triton_grpc_url)
    sampling = {"temperature": "0.1", "top_p": "0.95", "max_tokens": "20"}
    inputs = [triton.InferInput("text_input", [1], "BYTES"), triton.InferInput("stream", [1], "BOOL")]
    inputs[0].set_data_from_numpy(np.array([b"It is a truth universally acknowledged"], dtype=np.object_))
    inputs[1].set_data_from_numpy(np.array([True], dtype=bool))
    inputs.append(triton.InferInput("sampling_parameters", [1], "BYTES"))
    inputs[-1].set_data_from_numpy(np.array([json.dumps(sampling).encode("utf-8")], dtype=np.object_))

    async def requests() -> AsyncIterator[dict[str, Any]]:
        yield {
            "model_name": "tinylm",
            "inputs": inputs,
            "outputs": [triton.InferRequestedOutput("text_output")],
            "request_id": "sample-client",
            "parameters": {**sampling, "token_delay_ms": 20},
        }

    arrivals: list[tuple[float, str]] = []
    started = time.monotonic()
    try:
        async for result, error in client.stream_infer(requests()):
            assert error is None, error
            arrivals.append((time.monotonic() - started, result.as_numpy("text_output")[0].decode()))
            final = result.get_response().parameters.get("triton_final_response")
            if final is not None and final.bool_param:
                break
    finally:
        await client.close()
    # One token per response, the last one flagged final (as vLLM streams).
    assert len(arrivals) == 20, arrivals
    assert all(text for _, text in arrivals)
    first, last = arrivals[0][0], arrivals[-1][0]
    # 20 tokens at 20 ms each: the first must arrive long before the last (streamed, not batched).
    assert last - first > 0.2, arrivals


async def test_tinylm_reports_usage_and_stops_on_a_stop_sequence(stack: Settings) -> None:
    prompt = "It is a truth universally acknowledged"
    free = await triton_stream(stack, "tinylm", model_inputs(prompt, StageParams(max_tokens=30, seed=5), 30))
    # A stop sequence taken from the middle of the free run: the output ends just before it.
    stop, whole = free[12].strip(), "".join(free)
    params = StageParams(max_tokens=30, seed=5, stop=(stop,))
    responses = await triton_responses(stack, "tinylm", model_inputs(prompt, params, 30))
    assert "".join(r["text_output"] for r in responses) == whole[: whole.index(stop)]
    assert [r["finish_reason"] for r in responses] == ["None"] * (len(responses) - 1) + ["stop"]
    assert {r["num_input_tokens"] for r in responses} == {6}
    unstopped = await triton_responses(stack, "tinylm", model_inputs(prompt, StageParams(max_tokens=3, seed=5), 3))
    assert [r["finish_reason"] for r in unstopped] == ["None", "None", "length"]
    assert [r["num_output_tokens"] for r in unstopped] == [1, 1, 1]
