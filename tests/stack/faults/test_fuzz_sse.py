"""Bad input, SSE: property-based fuzzing of the bridge's path, query and headers over a raw socket (so any
byte can be sent): malformed and foreign job ids, forged, expired, tampered and other jobs' or tenants'
stream tokens, odd Last-Event-ID bytes, junk parameters and headers, and plain garbage.

A well-formed request gets exactly the documented answer (200, or 400/401/403/404 with a JSON body); any
request gets an answer below 500; a 200 stream carries only its own job's events, after the cursor; and the
bridge never crashes."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote, unquote

import jwt
import pytest
from hypothesis import strategies as st

from devstack.reliability import Record
from jobstream import cursors
from jobstream.auth import key_id, tenant_of_key
from jobstream.keys_store import digest, load_keys
from jobstream.settings import Settings
from jobstream.stream_tokens import AUDIENCE, StreamTokens
from tests.stack.faults.fuzzing import FuzzLog, examples, fuzz
from tests.stack.job_service_client import Stub, submit, wait_terminal
from tests.stack.sse_parser import SseParser
from tests.stack.stack_processes import current_pid, process_alive
from tests.stack.tenants import tenant_key

# Field-value bytes HTTP allows (visible ASCII, space, tab inside, obs-text); CTLs make a request malformed.
FIELD_BYTES = bytes([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)])
TOKEN_KINDS = ["valid", "valid", "valid", "missing", "garbage", "forged", "expired", "none-alg", "other-job",
               "tampered", "other-tenant", "wrong-tenant"]  # fmt: skip


@dataclass(frozen=True)
class Jobs:
    own: str  # the fuzz tenant's finished job
    own_token: str
    sibling: str  # another finished job of the same tenant
    sibling_token: str
    other: str  # another tenant's finished job
    other_token: str
    tenant: str
    other_tenant: str
    key_id: str  # of the fuzz tenant's API key: its stream tokens name it


@dataclass(frozen=True)
class SseCase:
    job: str  # own | sibling | other | missing | malformed
    malformed: str  # a path segment, already percent-encoded as a client would
    token: str  # one of TOKEN_KINDS
    garbage: str
    in_header: bool  # Authorization: Bearer ... instead of ?token=
    after: str | None  # ?after= (percent-encoded)
    last_event_id: bytes | None
    junk_query: str
    junk_headers: tuple[tuple[str, bytes], ...]


def token_for(case: SseCase, jobs: Jobs, tokens: StreamTokens, job_id: str) -> str:
    now = time.time()
    claims = {"sub": job_id, "ten": jobs.tenant, "kid": jobs.key_id, "aud": AUDIENCE, "iat": int(now)}
    claims["exp"] = int(now) + 600
    return {
        "valid": tokens.issue(job_id, jobs.tenant, jobs.key_id) if job_id != jobs.other else jobs.other_token,
        "missing": "",
        "garbage": case.garbage,
        "forged": jwt.encode(claims, secrets.token_urlsafe(32), algorithm="HS256"),
        "expired": tokens.issue(job_id, jobs.tenant, jobs.key_id, now=now - 10 * 86400),
        "none-alg": jwt.encode(claims, "", algorithm="none"),
        "other-job": jobs.sibling_token if job_id != jobs.sibling else jobs.own_token,
        "tampered": ".".join(
            [jobs.own_token.split(".")[0], jobs.sibling_token.split(".")[1], jobs.own_token.split(".")[2]]
        ),
        "other-tenant": jobs.other_token,  # a genuine token of another tenant, for its own job
        # Signed, but names another tenant.
        "wrong-tenant": tokens.issue(job_id, jobs.tenant + "-someone-else", jobs.key_id),
    }[case.token]


def expected_status(case: SseCase, jobs: Jobs, job_id: str, token: str, tokens: StreamTokens) -> set[int]:
    """The bridge's documented order: job id (400), token present (401), token valid (403), cursor (400), a
    story already ended (204), owner (404), then the stream (200)."""
    if case.job == "malformed":
        return {400, 404}  # 404 when the segment decodes to something the route does not match (a '/')
    if not token:
        return {401}
    try:
        grant = tokens.verify(token, job_id)
    except Exception:
        return {403}
    if case.token == "wrong-tenant":
        return {403}  # its key is not a key of the tenant it names
    after = resume_point(case)
    if after and not cursors.is_valid(after):
        return {400}
    if after >= cursors.terminal():
        return {204}  # the story has ended: what makes a browser's EventSource stop
    owner = {jobs.own: jobs.tenant, jobs.sibling: jobs.tenant, jobs.other: jobs.other_tenant}.get(job_id)
    return {200} if owner == grant.tenant else {404}  # a job of another tenant looks like no job at all


def resume_point(case: SseCase) -> str:
    """The cursor the bridge resumes after: ?after= if not empty, else Last-Event-ID (without its OWS)."""
    query = unquote(case.after, errors="replace") if case.after else ""  # as Starlette reads a query string
    return query or (case.last_event_id or b"").strip(b" \t").decode("latin-1")


def build_request(case: SseCase, jobs: Jobs, tokens: StreamTokens) -> tuple[bytes, str, str]:
    ids = {"own": jobs.own, "sibling": jobs.sibling, "other": jobs.other, "missing": "job_" + "c" * 26}
    job_id = ids.get(case.job, "")
    segment = case.malformed if case.job == "malformed" else job_id
    token = token_for(case, jobs, tokens, job_id) if job_id else case.garbage
    query = []
    if token and not case.in_header:
        query.append("token=" + quote(token, safe=""))
    if case.after is not None:
        query.append("after=" + case.after)
    if case.junk_query:
        query.append(case.junk_query)
    target = f"/v1/jobs/{segment}/events" + ("?" + "&".join(query) if query else "")
    lines = [f"GET {target} HTTP/1.1".encode(), b"Host: fuzz", b"Accept: text/event-stream", b"Connection: close"]
    if token and case.in_header:
        lines.append(b"Authorization: Bearer " + token.encode("latin-1", errors="replace"))
    if case.last_event_id is not None:
        lines.append(b"Last-Event-ID: " + case.last_event_id)
    lines += [name.encode() + b": " + value for name, value in case.junk_headers]
    return b"\r\n".join(lines) + b"\r\n\r\n", job_id, token


async def exchange(
    settings: Settings, request: bytes, garbage: bool = False, timeout_s: float = 60.0
) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole response (the server closes: Connection: close). Garbage is followed
    by end-of-input, since it may not even be a complete request; it may then get no answer (status 0)."""
    reader, writer = await asyncio.open_connection(settings.host, settings.bridge_port)
    try:
        writer.write(request)
        if garbage:
            writer.write_eof()
        await writer.drain()
        async with asyncio.timeout(timeout_s):
            data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if garbage and not data:
        return 0, {}, b""
    assert lines[0].startswith(b"HTTP/1.1 "), f"no HTTP answer to {request[:200]!r}: {data[:200]!r}"
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return status, headers, body


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


SEGMENT_PARTS = [*"abcdefghijklmnopqrstuvwxyz234567ABCXYZ_-.~019", "%2F", "%00", "%FF", "%E2%80%AE", "..", "%20"]
ODD_SEGMENTS = ["job_", "job_" + "A" * 26, "job_" + "a" * 27, "job_" + "a" * 26 + "%0A", "%2E%2E", ""]
AFTERS = ["", "000.0.0000000", "002.2.0000003", "999.9.0000000", "999.9.9999999", "002.2.00000001", "%FF", "%00", "x"]
LAST_EVENT_IDS = [b"002.2.0000001", b"000.0.0000000", b"\xff\xfe", b"002.2.0000001 "]
JUNK_QUERIES = ["", "x=1", "%FF=%FE", "a", "=", "&&", "x=" + "y" * 3000]
JUNK_HEADERS = ["X-Junk", "Cookie", "Accept-Language", "X-Forwarded-For", "Origin", "X-Forwarded-Proto"]


def strategy() -> st.SearchStrategy[SseCase]:
    field_value = st.binary(max_size=40).map(lambda raw: bytes(FIELD_BYTES[b % len(FIELD_BYTES)] for b in raw).strip())
    printable = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
    return st.builds(
        SseCase,
        job=st.sampled_from(["own", "own", "sibling", "other", "missing", "malformed"]),
        malformed=st.one_of(
            st.lists(st.sampled_from(SEGMENT_PARTS), max_size=40).map("".join), st.sampled_from(ODD_SEGMENTS)
        ),
        token=st.sampled_from(TOKEN_KINDS),
        garbage=st.one_of(st.text(printable, max_size=60), st.just("a.b.c")),
        in_header=st.booleans(),
        after=st.one_of(st.none(), st.sampled_from(AFTERS)),
        last_event_id=st.one_of(st.none(), st.sampled_from(LAST_EVENT_IDS), field_value),
        junk_query=st.sampled_from(JUNK_QUERIES),
        junk_headers=st.lists(st.tuples(st.sampled_from(JUNK_HEADERS), field_value), max_size=3).map(tuple),
    )


def garbage_requests() -> st.SearchStrategy[bytes]:
    """Requests that are not well-formed HTTP (control bytes, bare CRs, broken request lines)."""
    return st.one_of(
        st.binary(max_size=200).map(lambda raw: raw + b"\r\n\r\n"),
        st.builds(
            lambda junk: b"GET /v1/jobs/" + junk + b"/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            st.binary(max_size=40),
        ),
        st.builds(
            lambda junk: b"GET /v1/jobs/job_"
            + b"a" * 26
            + b"/events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: "
            + junk
            + b"\r\nConnection: close\r\n\r\n",
            st.binary(max_size=40),
        ),
    )


@pytest.mark.timeout(1800)
async def test_fuzzed_sse_requests_get_documented_answers_and_only_their_own_events(
    stub: Stub, api_key: str, stack: Settings, full_suite: bool, reliability: Record
) -> None:
    reliability.fault = "bad input: SSE path, query and headers (hypothesis, raw HTTP)"
    tokens = StreamTokens(stack)
    with tenant_key(stack, "ssefuzz") as (tenant, key):
        own = await submit(stub, key, "Fuzz my stream", max_tokens=5)
        sibling = await submit(stub, key, "My other stream", max_tokens=4)
        other = await submit(stub, api_key, "Another tenant's stream", max_tokens=3)
        for reply, owner in ((own, key), (sibling, key), (other, api_key)):
            await wait_terminal(stub, owner, reply.job_id)
        other_tenant = tenant_of_key(load_keys(stack), api_key)
        assert other_tenant is not None
        assert other_tenant != tenant
        jobs = Jobs(own.job_id, own.stream_token, sibling.job_id, sibling.stream_token, other.job_id,
                    other.stream_token, tenant, other_tenant, key_id(digest(key)))  # fmt: skip
        bridge_pid = current_pid(stack, "sse-bridge")
        log = FuzzLog()
        events_checked = 0

        async def check(case: SseCase | bytes) -> None:
            nonlocal events_checked
            if isinstance(case, bytes):
                status, _, _ = await exchange(stack, case, garbage=True)
                log.answer(str(status) if status else "closed")
                assert status == 0 or 400 <= status < 500, (case, status)
                return
            request, job_id, token = build_request(case, jobs, tokens)
            status, headers, body = await exchange(stack, request)
            log.answer(str(status))
            allowed = expected_status(case, jobs, job_id, token, tokens)
            assert status in allowed, (case, request[:300], status, body[:300])
            if status == 204:
                assert body == b"", body
                return
            if status != 200:
                assert headers.get("content-type", "").startswith("application/json"), (request[:300], headers)
                assert json.loads(body)["error"]["message"]
                return
            parser = SseParser()
            events = parser.feed(body, time.time())
            events_checked += len(events)
            after = resume_point(case)
            ids = [event.id or "" for event in events]
            assert all(event.json["job_id"] == job_id for event in events), events  # nothing misrouted
            assert all(event_id > after for event_id in ids), (after, ids)
            assert ids == sorted(set(ids)), ids
            if after < cursors.terminal():
                assert events, after
                assert events[-1].event == "job.completed", (after, ids)

        either: st.SearchStrategy[SseCase | bytes] = st.one_of(strategy(), strategy(), garbage_requests())
        try:
            await fuzz(either, check, examples(full_suite, reduced=200), full_suite)
        finally:
            reliability.inputs += log.cases
            reliability.events += events_checked
            reliability.jobs += 3
            reliability.note(f"HTTP {log.summary()}")
        assert current_pid(stack, "sse-bridge") == bridge_pid, "the bridge restarted"
        assert process_alive(bridge_pid)
