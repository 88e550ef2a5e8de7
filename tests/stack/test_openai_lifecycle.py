"""A response's life through the official openai SDK: cancel is final and closes the streams open on it, and
cancelling again is harmless; a finished response cannot be cancelled (400, never 409); delete; the same
Idempotency-Key gives the same response; what this server does not take gets OpenAI's error shape."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from jobstream.settings import Settings
from tests.eventually import eventually
from tests.stack.openai_client import PROMPT, Seen, openai_client, read_all


async def test_cancel_is_final_and_ends_the_open_streams(stack: Settings, api_key: str) -> None:
    async with openai_client(stack, api_key) as client:
        stream = await client.responses.create(
            model="drill-slow", input=PROMPT, stream=True, background=True, max_output_tokens=400
        )
        seen, reached = Seen(), asyncio.Event()

        async def watch() -> Seen:
            async for event in stream:
                seen.add(event)
                if event.sequence_number >= 8:  # well into its deltas (50 ms each)
                    reached.set()
            return seen

        watching = asyncio.ensure_future(watch())
        await asyncio.wait_for(reached.wait(), timeout=60)
        cancelled = await client.responses.cancel(seen.response_id)
        assert cancelled.status == "cancelled"
        ended = await asyncio.wait_for(watching, timeout=30)  # the open stream ends, with a terminal event
        assert ended.last.type == "response.incomplete"
        assert ended.last.response.status == "cancelled"
        assert ended.numbers == list(range(len(ended.numbers)))
        again = await client.responses.cancel(seen.response_id)  # idempotent
        assert again.status == "cancelled"
        await asyncio.sleep(1.0)
        assert (await client.responses.retrieve(seen.response_id)).status == "cancelled"  # and it stays so
        async with client.responses.stream(response_id=seen.response_id) as replayed:
            replay = await read_all(replayed, Seen())
        assert replay.last.type == "response.incomplete"  # a resumed stream ends with the terminal event too


async def test_a_finished_response_cannot_be_cancelled_and_can_be_deleted(stack: Settings, api_key: str) -> None:
    async with openai_client(stack, api_key) as client:
        done = await client.responses.create(model="generate", input=PROMPT, max_output_tokens=4)
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.cancel(done.id)
        assert refused.value.status_code == 400
        await client.responses.delete(done.id)

        async def gone() -> bool:
            try:
                await client.responses.retrieve(done.id)
            except openai.NotFoundError:
                return True
            return False

        # Temporal deletes in the background (about 20 s on the development server).
        await eventually(gone, bool, within_s=90, every_s=1.0, what="the deleted response is gone")


async def test_the_same_idempotency_key_gives_the_same_response(stack: Settings, api_key: str) -> None:
    async with openai_client(stack, api_key) as client:
        key = {"Idempotency-Key": f"openai-{asyncio.get_running_loop().time()}"}
        first = await client.responses.create(model="generate", input=PROMPT, background=True, extra_headers=key)
        second = await client.responses.create(model="generate", input=PROMPT, background=True, extra_headers=key)
        assert first.id == second.id
        with pytest.raises(openai.BadRequestError) as reused:  # another request under the same key
            await client.responses.create(model="generate", input="Other", background=True, extra_headers=key)
        assert reused.value.code == "idempotency_key_reused"


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"tools": [{"type": "web_search"}]}, "tools"), ({"modalities": ["audio"]}, "modalities")],
    ids=["tools", "unknown"],
)
async def test_what_this_server_does_not_take_is_refused_in_openais_shape(
    stack: Settings, api_key: str, extra: dict[str, object], param: str
) -> None:
    async with openai_client(stack, api_key) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.create(model="generate", input=PROMPT, extra_body=extra)
        assert refused.value.param == param
        with pytest.raises(openai.NotFoundError) as unknown:  # as OpenAI answers an unknown model
            await client.responses.create(model="no-such-model", input=PROMPT)
        assert (unknown.value.code, unknown.value.param) == ("model_not_found", "model")


async def test_unknown_endpoints_and_bad_bodies_get_openais_error_shape(stack: Settings, api_key: str) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=stack.bridge_url, timeout=30) as http:
        for method, path, body in [
            ("POST", "/v1/embeddings", b"{}"),
            ("POST", "/v1/responses", b"{not json"),
            ("GET", "/v1/responses/resp_nope", None),
        ]:
            reply = await http.request(method, path, headers=headers, content=body)
            assert 400 <= reply.status_code < 500, (path, reply.status_code, reply.text)
            error = reply.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}, (path, error)
        unauthenticated = await http.post("/v1/responses", json={"model": "generate", "input": "x"})
        assert unauthenticated.status_code == 401
        assert unauthenticated.json()["error"]["code"] == "invalid_api_key"
