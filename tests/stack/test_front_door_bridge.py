"""No one client takes the bridge's front door from everyone (issue 22), against the real stack: it refuses a
body before reading it unless a key came with it and never reads past the limit, odd input is a JSON 4xx
with no traceback, clients that trickle their headers are cut off, and its metrics are not on the public
port. How long /healthz took during each attack is printed (pytest -s) for the record."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable
from typing import Any

import httpx

from jobstream.settings import Settings
from tests.stack.timing import timed


async def raw_exchange(stack: Settings, head: bytes, body_bytes: int, chunk: int = 1 << 20) -> tuple[bytes, int]:
    """Send `head`, then up to `body_bytes` of body; the bridge's answer and how much of the body was sent
    before the bridge answered and closed the connection."""
    reader, writer = await asyncio.open_connection(stack.host, stack.bridge_port)
    sent = 0
    reply = b""
    try:
        writer.write(head)
        await writer.drain()
        while sent < body_bytes:
            answer = asyncio.ensure_future(reader.read(65536))
            writer.write(b"x" * chunk)
            drained = asyncio.ensure_future(writer.drain())
            done, _ = await asyncio.wait([answer, drained], timeout=2.0, return_when=asyncio.FIRST_COMPLETED)
            if answer in done:
                reply = answer.result()
                drained.cancel()
                break
            answer.cancel()
            if drained not in done:
                break  # the bridge stopped reading
            sent += chunk
        # The head and the body may arrive in separate segments: read to the bridge's close or its silence.
        with contextlib.suppress(TimeoutError):
            while more := await asyncio.wait_for(reader.read(65536), 2 if reply else 5):
                reply += more
    except ConnectionError:
        pass
    finally:
        writer.close()
    return reply, sent


async def answered_exchange(stack: Settings, head: bytes, body_bytes: int) -> tuple[bytes, int]:
    """raw_exchange, again (up to three times) when the connection was reset before its answer could be read:
    the bridge answers and closes with the body unread, and the kernel's reset can overtake the answer on its
    way to this client; that race is the client's, not the bridge's, and an empty reply says nothing."""
    for _ in range(3):
        reply, sent = await raw_exchange(stack, head, body_bytes)
        if reply:
            break
    return reply, sent


async def healthz_while(stack: Settings, attack: Awaitable[Any]) -> tuple[Any, float]:
    """The attack's outcome, and the slowest /healthz answer while it ran."""
    worst = 0.0
    task = asyncio.ensure_future(attack)
    async with httpx.AsyncClient(base_url=stack.bridge_url, timeout=30) as http:
        while not task.done():
            reply, took = await timed(lambda: http.get("/healthz"))
            assert reply.status_code == 200
            worst = max(worst, took)
            await asyncio.sleep(0.05)
    return task.result(), worst


async def test_the_bridge_reads_no_body_without_a_key_and_none_past_the_limit(stack: Settings, api_key: str) -> None:
    gib = 1 << 30
    anonymous = f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {gib}\r\n\r\n"
    (reply, sent), worst = await healthz_while(stack, answered_exchange(stack, anonymous.encode(), 96 << 20))
    print(
        f"\nan anonymous 1 GiB body: {sent >> 20} MiB sent before the answer; /healthz at worst {worst * 1000:.0f} ms"
    )
    assert reply.startswith(b"HTTP/1.1 401")
    assert sent < 16 << 20
    keyed = anonymous.replace("Host: x\r\n", f"Host: x\r\nAuthorization: Bearer {api_key}\r\n")
    reply, sent = await answered_exchange(stack, keyed.encode(), 96 << 20)
    assert reply.startswith(b"HTTP/1.1 413")
    assert b"resource_exhausted" in reply
    assert sent < 16 << 20
    # A body that does not say its length (one chunk of 1 GiB) is read up to the limit, no further.
    chunked = keyed.replace(f"Content-Length: {gib}", "Transfer-Encoding: chunked") + f"{gib:x}\r\n"
    reply, sent = await answered_exchange(stack, chunked.encode(), 96 << 20)
    assert reply.startswith(b"HTTP/1.1 413")
    assert sent < 48 << 20


async def test_a_body_shaped_to_be_slow_is_refused_before_it_is_parsed(stack: Settings, api_key: str) -> None:
    body = json.dumps({"prompt": "x", "params": {"stop": ["a"] * 5_000_000}}).encode()  # about 25 MiB

    async def post_twice() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.bridge_url, timeout=60) as http:
            headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
            return list(await asyncio.gather(*(http.post("/v1/jobs", content=body, headers=headers) for _ in range(2))))

    replies, worst = await healthz_while(stack, post_twice())
    print(f"\ntwo 25 MiB bodies of 5 million values: /healthz at worst {worst * 1000:.0f} ms")
    for reply in replies:
        assert reply.status_code == 400, reply.text
        assert "values" in reply.json()["error"]["message"]
    assert worst < 2.0


async def test_odd_input_is_a_json_4xx_naming_what_is_wrong_and_logs_no_traceback(
    stack: Settings, api_key: str
) -> None:
    log = stack.state_dir / "logs" / "sse-bridge.log"
    before = log.stat().st_size if log.exists() else 0
    key = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=stack.bridge_url, timeout=30) as http:
        cases = [
            (await http.post("/v1/jobs", content=b'{"prompt": "\xff\xfe"}', headers=key), 400, ""),
            (await http.post("/v1/jobs", content=b"[" * 100_000, headers=key), 400, ""),
            (await http.post("/v1/jobs", content=b'{"a":' * 50 + b"1" + b"}" * 50, headers=key), 400, ""),
            (await http.get("/v1/jobs", params={"pageSize": "\u00b2"}, headers=key), 400, ""),
            (await http.get("/v1/jobs", headers=[(b"Authorization", "Bearer cl\u00e9".encode())]), 401, ""),
            (
                await http.post(f"/v1/jobs/job_{'a' * 26}:cancel", json={"jobId": f"job_{'b' * 26}"}, headers=key),
                400,
                "job_id",
            ),
        ]
    for reply, status, field in cases:
        assert reply.status_code == status, (reply.status_code, reply.text)
        error = reply.json()["error"]
        assert error["message"]
        if field:
            assert error["field"] == field
    await asyncio.sleep(0.5)
    written = log.read_bytes()[before:] if log.exists() else b""
    assert b"Traceback" not in written, written.decode(errors="replace")[-2000:]


async def trickle(stack: Settings, stop: asyncio.Event) -> float | None:
    """A client that sends one header line a second and never ends its head: how long until the bridge closed
    the connection (None if it had not when `stop` was set)."""
    reader, writer = await asyncio.open_connection(stack.host, stack.bridge_port)
    started = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    try:
        line = 0
        while not stop.is_set():
            line += 1
            writer.write(f"X-Slow-{line}: 1\r\n".encode())
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1), 1.0) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                continue
    except ConnectionError:
        return time.monotonic() - started
    finally:
        writer.close()
    return None


async def test_clients_that_trickle_their_headers_are_cut_off(stack: Settings) -> None:
    stop = asyncio.Event()
    slow = [asyncio.create_task(trickle(stack, stop)) for _ in range(300)]
    await asyncio.sleep(2)
    worst = 0.0
    async with httpx.AsyncClient(base_url=stack.bridge_url, timeout=30) as http:
        for _ in range(10):
            reply, took = await timed(lambda: http.get("/healthz"))
            assert reply.status_code == 200
            worst = max(worst, took)
            await asyncio.sleep(0.2)
    print(f"\nwith 300 clients trickling header lines: /healthz at worst {worst * 1000:.0f} ms")
    done, _ = await asyncio.wait(slow, timeout=stack.bridge_header_timeout_s + 5)
    stop.set()
    held = [task.result() for task in done]
    assert len(held) == 300
    assert all(seconds is not None and seconds < stack.bridge_header_timeout_s + 3 for seconds in held), held


async def test_the_bridges_metrics_are_on_their_own_port_not_the_public_one(stack: Settings) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        public = await http.get(f"{stack.bridge_url}/metrics")
        private = await http.get(f"http://{stack.host}:{stack.bridge_metrics_port}/metrics")
    assert public.status_code == 404, public.text[:200]
    assert public.headers["content-type"].startswith("application/json")
    assert "jobstream_sse" not in public.text
    assert private.status_code == 200
    assert "jobstream_sse_open_streams" in private.text
