"""Chat Completions and models through the official openai SDK: a streamed completion with the usage chunk, the
same completion fetched by its id afterwards (a client whose stream broke loses nothing), one answered whole,
strict parsing throughout."""

from __future__ import annotations

import pytest

from jobstream.settings import Settings
from tests.stack.openai_client import PROMPT, openai_client


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
async def test_a_streamed_chat_completion_ends_with_usage_and_can_be_fetched_again(
    stack: Settings, api_key: str, strict: bool
) -> None:
    async with openai_client(stack, api_key, strict=strict) as client:
        stream = await client.chat.completions.create(
            model="generate",
            messages=[{"role": "system", "content": "Continue."}, {"role": "user", "content": PROMPT}],
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=10,
            extra_body={"seed": 3},
        )
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes == ["length"]
        usage_chunk = chunks[-1]
        assert usage_chunk.choices == []
        assert usage_chunk.usage is not None
        assert usage_chunk.usage.completion_tokens == 10
        assert all(c.usage is None for c in chunks[:-1])
        assert len({c.id for c in chunks}) == 1
        again = await client.chat.completions.retrieve(chunks[0].id)
        assert again.choices[0].message.content == text
        assert again.usage is not None
        assert again.usage.total_tokens == usage_chunk.usage.total_tokens


async def test_a_chat_completion_answered_whole(stack: Settings, api_key: str) -> None:
    async with openai_client(stack, api_key, strict=True) as client:
        done = await client.chat.completions.create(
            model="generate", messages=[{"role": "user", "content": PROMPT}], max_tokens=6
        )
        assert done.object == "chat.completion"
        assert done.choices[0].finish_reason == "length"
        assert done.choices[0].message.content
        assert done.usage is not None
        assert done.usage.completion_tokens == 6
        model = await client.models.retrieve("generate")
        assert model.id == "generate"
