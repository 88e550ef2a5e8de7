"""Figure 2's Responses row: the same job through the OpenAI-compatible API, `POST /v1/responses` with
`stream: true`, from the call to the first `response.output_text.delta` at the client; against the job through
SubmitJob and its `/v1/jobs` SSE stream in the same run. One HTTP call instead of a gRPC call and a GET."""

from __future__ import annotations

import time

import httpx

from bench.common import PROMPT, SEED, Context

DELTA = "event: response.output_text.delta"


async def responses_first_token(ctx: Context, max_tokens: int) -> float:
    """Seconds from the POST to the first delta's arrival."""
    body = {"model": "generate", "input": PROMPT, "stream": True, "max_output_tokens": max_tokens, "seed": SEED}
    headers = {"Authorization": f"Bearer {ctx.api_key}"}
    verify = str(ctx.settings.server_ca_file) if ctx.settings.server_ca_file else True
    async with httpx.AsyncClient(timeout=60, verify=verify) as http:
        started = time.time()
        async with http.stream("POST", f"{ctx.settings.bridge_url}/v1/responses", json=body, headers=headers) as reply:
            reply.raise_for_status()
            first = 0.0
            async for line in reply.aiter_lines():
                if line == DELTA and not first:
                    first = time.time() - started
            # Read to its end: the next job of the figure must not run beside this one.
    assert first, "the response streamed no delta"
    return first
