"""The Responses API on the bridge with the official openai SDK as the client: a streamed response is the
documented event sequence, numbered without gaps, whose deltas are the response's text; a stream broken at k
resumes with the SDK's own helper, background or not; retrieve and poll; strict parsing throughout."""

from __future__ import annotations

import asyncio

import pytest

from jobstream.settings import Settings
from tests.stack.openai_client import PROMPT, openai_client, read_all

FIRST_DELTA = 5


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
async def test_a_streamed_response_is_numbered_without_gaps_and_its_deltas_are_its_text(
    stack: Settings, api_key: str, strict: bool
) -> None:
    async with openai_client(stack, api_key, strict=strict) as client:
        stream = await client.responses.create(model="generate", input=PROMPT, stream=True, max_output_tokens=12)
        seen = await read_all(stream)
        assert seen.types[:5] == [
            "response.created",
            "response.queued",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
        ]
        assert seen.types[-4:] == [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.incomplete",  # cut at max_output_tokens
        ]
        assert seen.numbers == list(range(len(seen.numbers)))
        assert len(seen.deltas) == 12
        final = seen.last.response
        assert final.status == "incomplete"
        assert final.output_text == "".join(seen.deltas)
        again = await client.responses.retrieve(final.id)
        assert (again.status, again.output_text) == ("incomplete", final.output_text)
        assert again.usage is not None
        assert again.usage.output_tokens == 12


@pytest.mark.parametrize("background", [True, False], ids=["background", "foreground"])
async def test_a_broken_stream_resumes_with_the_sdks_helper(stack: Settings, api_key: str, background: bool) -> None:
    async with openai_client(stack, api_key) as client:
        # Seed 2 with stop "." ends after 11 tokens: a response that completes (the SDK's helper wants that).
        stream = await client.responses.create(
            model="generate", input=PROMPT, stream=True, background=background, extra_body={"stop": ["."], "seed": 2}
        )
        broken_at = FIRST_DELTA + 3
        before = await read_all(stream, stop_after=broken_at)
        await stream.close()  # the connection drops mid-response
        async with client.responses.stream(response_id=before.response_id, starting_after=broken_at) as resumed:
            after = await read_all(resumed)
            final = await resumed.get_final_response()
        assert min(after.numbers) == broken_at + 1  # nothing seen twice, nothing skipped
        assert before.numbers + after.numbers == list(range(len(before.numbers) + len(after.numbers)))
        assert "".join(before.deltas + after.deltas) == final.output_text
        assert final.status == "completed"
        assert after.types[-1] == "response.completed"


async def test_a_background_response_is_retrieved_until_it_completes(stack: Settings, api_key: str) -> None:
    async with openai_client(stack, api_key, strict=True) as client:
        created = await client.responses.create(
            model="generate", input=PROMPT, background=True, metadata={"order": "42"}
        )
        assert (created.status, created.metadata) == ("queued", {"order": "42"})
        assert created.id.startswith("resp_")
        for _ in range(300):
            polled = await client.responses.retrieve(created.id)
            if polled.status not in ("queued", "in_progress"):
                break
            await asyncio.sleep(0.1)
        assert polled.status in ("completed", "incomplete")
        assert (polled.created_at, polled.metadata) == (created.created_at, {"order": "42"})
        assert polled.output_text
        assert polled.usage is not None
        assert polled.usage.total_tokens == polled.usage.input_tokens + polled.usage.output_tokens


async def test_a_response_created_without_stream_or_background_answers_when_done(stack: Settings, api_key: str) -> None:
    async with openai_client(stack, api_key, strict=True) as client:
        done = await client.responses.create(
            model="generate", input=[{"role": "user", "content": PROMPT}], instructions="Continue.", max_output_tokens=8
        )
        assert done.status == "incomplete"
        assert done.output_text
        models = await client.models.list()
        assert "generate" in [model.id for model in models.data]
