"""Bad input, OpenAI-compatible API: property-based bodies for `POST /v1/responses` and `/v1/chat/completions`
(known parameters with odd values, unknown ones, wrong types, nesting, garbage bytes). Every answer is below 500;
every refusal is OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, and never a 409 (the
SDKs would retry it). The requests run in the background (or with one token), so accepted ones stay cheap."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import strategies as st

from devstack.reliability import Record
from jobstream.settings import Settings
from tests.stack.faults.fuzzing import FuzzLog, examples, fuzz

KNOWN = ["model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "seed", "stop", "store"]
CHAT_KNOWN = ["model", "messages", "max_tokens", "temperature", "stream_options", "n", "stop"]
SCALAR = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=40)
# Two levels of lists and objects, composed by hand (no st.recursive: shallow is what these parsers see first).
NESTED = st.lists(SCALAR, max_size=4) | st.dictionaries(st.text(max_size=12), SCALAR, max_size=4)
JSON = SCALAR | NESTED | st.lists(NESTED, max_size=3) | st.dictionaries(st.text(max_size=12), NESTED, max_size=3)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "robot", ""]), "content": JSON | st.text(max_size=30)}
)


def bodies(known: list[str], fixed: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """A body as bytes: mostly a JSON object mixing known parameters (odd values too) and unknown ones."""
    values = st.dictionaries(st.sampled_from(known) | st.text(max_size=16), JSON | st.lists(MESSAGE, max_size=3))
    objects = st.tuples(values, st.booleans()).map(
        lambda pair: json.dumps({**pair[0], **(fixed if pair[1] else {})}).encode()
    )
    return objects | st.binary(max_size=64) | JSON.map(lambda v: json.dumps(v).encode())


async def test_odd_openai_bodies_get_openais_error_shape_and_never_a_5xx(
    stack: Settings, api_key: str, full_suite: bool, reliability: Record
) -> None:
    reliability.fault = "bad input: OpenAI-compatible bodies (hypothesis)"
    log = FuzzLog()
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    responses = bodies(KNOWN, {"model": "generate", "input": "It is", "background": True, "max_output_tokens": 1})
    chats = bodies(
        CHAT_KNOWN, {"model": "generate", "messages": [{"role": "user", "content": "It is"}], "max_tokens": 1}
    )
    cases = st.tuples(st.sampled_from(["/v1/responses", "/v1/chat/completions"]), responses, chats)
    async with httpx.AsyncClient(base_url=stack.bridge_url, timeout=60) as http:

        async def check(case: tuple[str, bytes, bytes]) -> None:
            path, response_body, chat_body = case
            reply = await http.post(
                path, content=response_body if path == "/v1/responses" else chat_body, headers=headers
            )
            log.answer(str(reply.status_code))
            assert reply.status_code < 500, (path, reply.status_code, reply.text)
            assert reply.status_code != 409, reply.text
            if reply.status_code >= 400:
                assert set(reply.json()["error"]) == {"message", "type", "param", "code"}, reply.text

        await fuzz(cases, check, examples(full_suite, reduced=150, whole=1000), full_suite)
    reliability.inputs += log.cases
    reliability.note(f"HTTP {log.summary()}")
