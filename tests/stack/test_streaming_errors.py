"""The SSE bridge's refusals against the real stack: every bad request gets a 4xx with a JSON body, never a
5xx and never someone else's events."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import grpc
import httpx
import jwt
import pytest

from jobstream.auth import key_id, tenant_of_key
from jobstream.keys_store import digest, load_keys
from jobstream.settings import Settings
from jobstream.stream_tokens import AUDIENCE, StreamTokens
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_service_pb2_grpc import JobServiceStub
from tests.stack.job_service_client import Stub, submit, wait_terminal
from tests.stack.sse_client import events_url, read_stream


@pytest.fixture(scope="module")
async def stub(stack: Settings) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(stack.grpc_target) as channel:
        yield JobServiceStub(channel)


@pytest.fixture(scope="module")
async def finished_jobs(stub: Stub, api_key: str) -> tuple[api.SubmitJobResponse, api.SubmitJobResponse]:
    first = await submit(stub, api_key, "A door that stays shut", max_tokens=5)
    second = await submit(stub, api_key, "Another door", max_tokens=5)
    await wait_terminal(stub, api_key, first.job_id)
    await wait_terminal(stub, api_key, second.job_id)
    return first, second


def random_job_id() -> str:
    return "job_" + base64.b32encode(secrets.token_bytes(20)).decode().lower()[:26]


async def refused(client: httpx.AsyncClient, url: str, status: int, code: str, **headers: str) -> dict[str, object]:
    response = await client.get(url, headers=headers)
    assert response.status_code == status, (url, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"], body
    return dict(body["error"])


async def test_stream_token_problems_are_refused_with_json(
    stack: Settings, api_key: str, finished_jobs: tuple[api.SubmitJobResponse, api.SubmitJobResponse]
) -> None:
    first, second = finished_jobs
    tenant = tenant_of_key(load_keys(stack), api_key)
    assert tenant is not None
    kid = key_id(digest(api_key))
    tokens = StreamTokens(stack)
    bridge = stack.bridge_url
    async with httpx.AsyncClient(timeout=30) as client:
        # The real token works, in the query string or as a bearer header.
        assert (await read_stream(client, first.events_url))[-1].event == "job.completed"
        bare = f"{bridge}/v1/jobs/{first.job_id}/events"
        by_header = await read_stream(client, bare, headers={"authorization": f"Bearer {first.stream_token}"})
        assert by_header[-1].event == "job.completed"
        # No token at all.
        await refused(client, bare, 401, "unauthenticated")
        # Garbage, and a well-formed token signed with another secret (forged).
        await refused(client, events_url(bridge, first.job_id, "not-a-token"), 403, "permission_denied")
        forged = jwt.encode(
            {
                "sub": first.job_id,
                "ten": tenant,
                "kid": kid,
                "aud": AUDIENCE,
                "iat": int(time.time()),
                "exp": int(time.time()) + 600,
            },
            secrets.token_urlsafe(32),
            algorithm="HS256",
        )
        await refused(client, events_url(bridge, first.job_id, forged), 403, "permission_denied")
        await refused(client, bare, 403, "permission_denied", authorization=f"Bearer {forged}")
        # A token tampered with: the payload of another job under this job's signature.
        header, _, signature = first.stream_token.split(".")
        other_payload = second.stream_token.split(".")[1]
        tampered = f"{header}.{other_payload}.{signature}"
        await refused(client, events_url(bridge, second.job_id, tampered), 403, "permission_denied")
        # A genuine token, but for another job.
        await refused(client, events_url(bridge, second.job_id, first.stream_token), 403, "permission_denied")
        # Expired: issued ten days ago.
        expired = tokens.issue(first.job_id, tenant, kid, now=time.time() - 10 * 86400)
        await refused(client, events_url(bridge, first.job_id, expired), 403, "permission_denied")


async def test_unknown_malformed_and_foreign_jobs_are_refused_with_json(
    stack: Settings, api_key: str, finished_jobs: tuple[api.SubmitJobResponse, api.SubmitJobResponse]
) -> None:
    first, _ = finished_jobs
    tenant = tenant_of_key(load_keys(stack), api_key)
    assert tenant is not None
    kid = key_id(digest(api_key))
    tokens = StreamTokens(stack)
    bridge = stack.bridge_url
    async with httpx.AsyncClient(timeout=30) as client:
        # A valid-looking job id with a correctly signed token for it: the job does not exist.
        unknown = random_job_id()
        await refused(client, events_url(bridge, unknown, tokens.issue(unknown, tenant, kid)), 404, "not_found")
        # A real job, with a signed token for another tenant that names this tenant's key: the key is not one of
        # the token's tenant, so the token is refused (the job's owner is not even asked).
        foreign = tokens.issue(first.job_id, f"{tenant}-someone-else", kid)
        await refused(client, events_url(bridge, first.job_id, foreign), 403, "permission_denied")
        # Malformed job ids (checked before anything else, token or not).
        for bad in ("job_SHOUTING0000000000000000000", "job_short", "12345", "job_" + "a" * 27):
            body = await refused(client, events_url(bridge, bad, first.stream_token), 400, "invalid_argument")
            assert body["field"] == "job_id"
        # A resume cursor that is not an event id, in either place.
        for cursor in ("nonsense", "1.2.3", "002.2.00000001", "002.2.000000x", "-1"):
            body = await refused(client, first.events_url, 400, "invalid_argument", **{"last-event-id": cursor})
            assert body["field"] == "after"
        for cursor in ("nonsense", "002.2.00000001", "\u0662\u0662\u0662.2.0000001", "002.2.0000001\n"):
            url = events_url(bridge, first.job_id, first.stream_token) + "&" + urlencode({"after": cursor})
            body = await refused(client, url, 400, "invalid_argument")
            assert body["field"] == "after"
        # Unknown paths and methods are JSON too.
        await refused(client, f"{bridge}/v1/jobs/{first.job_id}/nothing-here", 404, "http_error")
        response = await client.post(first.events_url)
        assert response.status_code == 405
        assert response.json()["error"]["code"] == "http_error"
