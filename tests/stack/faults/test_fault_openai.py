"""Fault: the GPU worker SIGKILLed in the middle of a response that the official openai SDK streams. The stage
resumes on the restarted worker from the delivered prefix, and the SDK's concatenated deltas are the response's
text, with no sequence number twice; the stream, resumed by the SDK's helper across the break, ends with its
terminal event."""

from __future__ import annotations

import asyncio

from devstack.reliability import Record
from jobstream.settings import Settings
from tests.stack.openai_client import PROMPT, Seen, openai_client
from tests.stack.stack_processes import kill_process, wait_restarted

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
