"""Faults under the official openai SDK. The GPU worker SIGKILLed in the middle of a response it streams: the stage
resumes on the restarted worker from the delivered prefix, and the SDK's concatenated deltas are the response's
text, with no sequence number twice; the stream, resumed by the SDK's helper across the break, ends with its
terminal event. And the bridge SIGKILLed: a response that ended replays identically afterwards, read back from the
events topic (not a process's memory), which keeps a job's events at least as long as Temporal keeps the job
(OpenAI's own resume lasts about 5 minutes)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

from devstack.reliability import Record
from jobstream.connections import kafka_options
from jobstream.settings import Settings
from jobstream.temporal_client import connect
from tests.stack.openai_client import PROMPT, Seen, openai_client, read_all
from tests.stack.stack_processes import kill_process, wait_restarted

KAFKA_DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000
STRIKE_AT = 20  # sequence number: well into the deltas of a drill-slow response (50 ms each)


async def test_a_gpu_worker_killed_mid_response_leaves_the_text_whole(
    stack: Settings, api_key: str, reliability: Record
) -> None:
    reliability.fault = "13. GPU worker SIGKILLed mid-response, streamed to the official openai SDK"
    reliability.inputs += 1
    async with openai_client(stack, api_key) as client:
        stream = await client.responses.create(
            model="drill-slow", input=PROMPT, stream=True, background=True, max_output_tokens=120
        )
        seen = Seen()
        killed: list[int] = []
        async for event in stream:
            seen.add(event)
            if event.sequence_number >= STRIKE_AT and not killed:
                killed.append(kill_process(stack, "gpu-worker-tinylm"))
        # The stream may end early if the bridge had nothing left to say; the SDK's resume helper finishes it.
        while seen.last is None or seen.last.type not in ("response.completed", "response.incomplete"):
            async with client.responses.stream(response_id=seen.response_id, starting_after=seen.numbers[-1]) as more:
                async for event in more:
                    seen.add(event)
        await asyncio.wait_for(wait_restarted(stack, "gpu-worker-tinylm", killed[0]), timeout=240)
        reliability.jobs += 1
        reliability.events += len(seen.numbers)
        reliability.duplicated += len(seen.numbers) - len(set(seen.numbers))
        reliability.lost += len(set(range(max(seen.numbers) + 1)) - set(seen.numbers))
        assert len(set(seen.numbers)) == len(seen.numbers), "no sequence number twice"
        assert seen.numbers == list(range(len(seen.numbers)))
        final = await client.responses.retrieve(seen.response_id)
        assert final.status == "incomplete"  # cut at its 120 tokens, as asked
        assert "".join(seen.deltas) == final.output_text
        assert len(seen.deltas) == 120


async def topic_retention(settings: Settings) -> timedelta:
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        (described,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, settings.events_topic)])
    finally:
        await admin.close()
    entries = {entry[0]: entry[1] for entry in described.resources[0][4]}
    return timedelta(milliseconds=int(entries.get("retention.ms") or KAFKA_DEFAULT_RETENTION_MS))


async def test_an_ended_response_replays_identically_after_the_bridge_restarts(
    stack: Settings, api_key: str, reliability: Record
) -> None:
    reliability.fault = "14. SSE bridge SIGKILLed, then an ended response resumed through the official openai SDK"
    reliability.inputs += 1
    async with openai_client(stack, api_key) as client:
        stream = await client.responses.create(model="generate", input=PROMPT, stream=True, max_output_tokens=16)
        first = await read_all(stream)
        await wait_restarted(stack, "sse-bridge", kill_process(stack, "sse-bridge"))
        async with client.responses.stream(response_id=first.response_id) as replayed:
            again = await read_all(replayed, Seen())
        reliability.jobs += 1
        reliability.events += len(again.numbers)
        reliability.lost += len(set(first.numbers) - set(again.numbers))
        reliability.duplicated += len(again.numbers) - len(set(again.numbers))
        assert (again.types, again.numbers, again.deltas) == (first.types, first.numbers, first.deltas)
    temporal = await connect(stack)
    namespace = await temporal.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=temporal.namespace)
    )
    kept_by_temporal = namespace.config.workflow_execution_retention_ttl.ToTimedelta()
    assert await topic_retention(stack) >= kept_by_temporal >= timedelta(hours=24)
