"""The SSE bridge app's refusals (no servers): a request without a valid token for the job, or with a bad
argument, is a JSON 4xx; a backend failure is a JSON 503, not a crash.

The event log and Temporal are stand-ins (tests/unit/sse_bridge_kit.py); the real ones are exercised by
tests/stack/test_streaming*.py.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from jobstream.settings import Settings
from jobstream.stream_tokens import StreamTokens
from tests.unit.sse_bridge_kit import JOB, KID, OTHER_JOB, TENANT, Directory, SilentStream, lifespan, make_app, tokens


async def error(client: httpx.AsyncClient, url: str, status: int, code: str, **headers: str) -> dict[str, Any]:
    response = await client.get(url, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()["error"]
    assert body["code"] == code
    assert body["message"]
    return body


async def test_refusals_are_json_4xx() -> None:
    app = make_app(SilentStream(), Directory(), keepalive_s=15)
    issuer = tokens()
    good = issuer.issue(JOB, TENANT, KID)
    transport = httpx.ASGITransport(app=app)
    async with lifespan(app), httpx.AsyncClient(transport=transport, base_url="http://bridge.test") as client:
        url = f"/v1/jobs/{JOB}/events"
        await error(client, url, 401, "unauthenticated")
        await error(client, f"{url}?token=garbage", 403, "permission_denied")
        await error(client, url, 403, "permission_denied", authorization="Bearer garbage")
        forged = StreamTokens(Settings(stream_token_secret="someone-else-" + "y" * 32)).issue(JOB, TENANT, KID)
        await error(client, f"{url}?token={forged}", 403, "permission_denied")
        await error(client, f"/v1/jobs/{OTHER_JOB}/events?token={good}", 403, "permission_denied")
        expired = issuer.issue(JOB, TENANT, KID, now=time.time() - 10 * 86400)
        await error(client, f"{url}?token={expired}", 403, "permission_denied")
        missing = "job_" + "c" * 26
        await error(client, f"/v1/jobs/{missing}/events?token={issuer.issue(missing, TENANT, KID)}", 404, "not_found")
        # A token whose key is not a key of its tenant is refused before the job's owner is even asked.
        await error(client, f"{url}?token={issuer.issue(JOB, 'intruder', KID)}", 403, "permission_denied")
        body = await error(client, f"/v1/jobs/job_nope/events?token={good}", 400, "invalid_argument")
        assert body["field"] == "job_id"
        body = await error(client, f"{url}?token={good}", 400, "invalid_argument", **{"last-event-id": "x"})
        assert body["field"] == "after"
        body = await error(client, f"{url}?token={good}&after=002.2.1", 400, "invalid_argument")
        assert body["field"] == "after"


async def test_a_backend_failure_is_a_json_503_not_a_crash() -> None:
    app = make_app(SilentStream(), Directory(fail=True), keepalive_s=15)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with lifespan(app), httpx.AsyncClient(transport=transport, base_url="http://bridge.test") as client:
        await error(client, f"/v1/jobs/{JOB}/events?token={tokens().issue(JOB, TENANT, KID)}", 503, "unavailable")
