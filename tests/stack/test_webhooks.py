"""Webhooks against the real stack: `jobstream webhooks add` registers a receiver for a tenant; the tenant's
response ends and its event arrives, signed so that the official openai SDK's `webhooks.unwrap()` verifies it;
a 503 is retried with the same body and webhook-id; `jobstream webhooks deliveries` shows the delivery."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from openai import AsyncOpenAI
from openai.types.webhooks import ResponseCompletedWebhookEvent

from jobstream.settings import Settings
from tests.eventually import eventually
from tests.stack.openai_client import PROMPT, openai_client
from tests.stack.tenants import tenant_key
from tests.stack.webhook_receiver import webhook_receiver

JOBSTREAM = str(Path(sys.executable).with_name("jobstream"))


async def jobstream(stack: Settings, *args: str) -> str:
    env = {**os.environ, "JOBSTREAM_STATE_DIR": str(stack.state_dir), "JOBSTREAM_WEBHOOKS_ALLOW_PRIVATE": "true"}
    process = await asyncio.create_subprocess_exec(JOBSTREAM, *args, env=env, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, args
    return out.decode()


async def test_a_response_ending_is_delivered_signed_and_retried_after_a_503(stack: Settings) -> None:
    with tenant_key(stack, "hooks") as (tenant, key):
        async with webhook_receiver([503]) as receiver:
            endpoint_id, secret = (await jobstream(stack, "webhooks", "add", tenant, receiver.url)).split()
            try:
                async with openai_client(stack, key) as client:
                    done = await client.responses.create(
                        model="generate", input=PROMPT, extra_body={"stop": ["."], "seed": 2}
                    )
                first, second = await receiver.next(2, within_s=60)  # the 503, then again 5 s later
            finally:
                await jobstream(stack, "webhooks", "remove", endpoint_id)
        assert first.body == second.body
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        verifier = AsyncOpenAI(api_key="unused", webhook_secret=secret)
        event = verifier.webhooks.unwrap(second.body, second.headers)
        assert isinstance(event, ResponseCompletedWebhookEvent)
        assert event.data.id == done.id
        assert json.loads(second.body)["data"]["job_id"] == "job_" + done.id.removeprefix("resp_")
        job_id = "job_" + done.id.removeprefix("resp_")

        async def deliveries() -> str:
            return await jobstream(stack, "webhooks", "deliveries", "--job", job_id)

        listed: str = await eventually(
            deliveries,
            lambda out: "delivered" in out,
            within_s=30,
            every_s=0.5,
            what="the delivery listed as delivered",
        )
        assert "attempts=2" in listed
