"""The web edge in a real browser: Debian's chromium, driven by Playwright, against the real stack. The live
page submits and renders a job; it sends the key to its own origin only, whatever its URL says; a page on
an allowed origin reads the stream and one on another origin cannot; the browser's own EventSource survives
a SIGKILL of the bridge with every token exactly once; and an EventSource nobody closes stops by itself
after the terminal event."""

from __future__ import annotations

import asyncio
import functools
import http.server
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from devstack import chromium
from devstack.reliability import Record
from jobstream.auth import key_id, tenant_of_key
from jobstream.keys_store import digest, load_keys
from jobstream.settings import Settings
from jobstream.stream_tokens import StreamTokens
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import GenerationParams
from tests.stack.job_service_client import auth, job_service
from tests.stack.stack_processes import kill_process, wait_restarted


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium.find()
    assert executable is not None, "no chromium: scripts/bootstrap installs Debian's package"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(executable), args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    # Playwright's waits evaluate their conditions as strings, which the page's policy (no eval) forbids; the
    # policy itself is tested on a page of its own (strict_page).
    context = await browser.new_context(bypass_csp=True)
    opened = await context.new_page()
    yield opened
    await context.close()


@pytest.fixture
async def strict_page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    opened = await context.new_page()
    yield opened
    await context.close()


async def submit_from(page: Page, pipeline: str, max_tokens: int, seed: int | None = None) -> str:
    await page.select_option("#pipeline", pipeline)
    await page.fill("#max-tokens", str(max_tokens))
    if seed is not None:
        await page.fill("#seed", str(seed))
    await page.click("#submit")
    await page.wait_for_function("window.jobstream.jobId !== undefined || document.getElementById('error').textContent")
    error = await page.inner_text("#error")
    assert not error, error
    return str(await page.evaluate("window.jobstream.jobId"))


async def finished(page: Page, timeout_s: float = 60) -> None:
    await page.wait_for_function("window.jobstream.final !== null", timeout=timeout_s * 1000)


async def result_of(stack: Settings, api_key: str, job_id: str) -> str:
    async with job_service(stack) as stub:
        for _ in range(100):
            job = (await stub.GetJob(api.GetJobRequest(job_id=job_id), metadata=auth(api_key))).job
            if job.result_text:
                return job.result_text
            await asyncio.sleep(0.1)
    raise AssertionError(f"{job_id} has no result")


async def test_the_page_submits_a_job_and_renders_every_token(page: Page, stack: Settings, api_key: str) -> None:
    await page.goto(f"{stack.bridge_url}/#key={api_key}")
    # The key left the URL at once (a fragment never reaches a server or a log) and stays for this tab.
    assert "key=" not in page.url
    assert await page.evaluate("sessionStorage.getItem('jobstream.key')") == api_key
    job_id = await submit_from(page, "drill-slow", 40, seed=3)
    await page.wait_for_function("window.jobstream.indices.length >= 15")
    # Mid-stream (docs/live-page.png in the README is one of these).
    await page.screenshot(path=str(stack.state_dir / "live-page.png"))
    await finished(page)
    assert await page.evaluate("window.jobstream.indices") == list(range(40))
    assert await page.inner_text("#status") == "SUCCEEDED"
    assert await page.evaluate("document.getElementById('progress').value") == 1
    assert await page.inner_text("#attempt") == "1"
    assert await page.evaluate("document.getElementById('output').textContent") == await result_of(
        stack, api_key, job_id
    )


class Capture(http.server.BaseHTTPRequestHandler):
    """Records every request that reaches it: another origin a crafted link might name as the page's API."""

    seen: ClassVar[list[str]] = []

    def _record(self) -> None:
        Capture.seen.append(f"{self.command} {self.path} {self.headers.get('Authorization', '')}")
        self.send_response(200)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "*")
        self.end_headers()

    do_GET = do_POST = do_OPTIONS = _record

    def log_message(self, *args: object) -> None:
        pass


async def test_the_page_sends_the_key_only_to_its_own_origin_whatever_its_url_says(
    page: Page, strict_page: Page, stack: Settings, api_key: str
) -> None:
    capture = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=capture.serve_forever, daemon=True).start()
    elsewhere = f"http://127.0.0.1:{capture.server_port}"
    try:
        async with httpx.AsyncClient() as client:
            reply = await client.get(f"{stack.bridge_url}/")
        policy = reply.headers["content-security-policy"].split("; ")
        assert {"default-src 'none'", "connect-src 'self'"} <= set(policy)
        assert any(part.startswith("script-src 'sha256-") for part in policy)
        assert reply.headers["referrer-policy"] == "no-referrer"
        # The link of the finding: the genuine page, told by its URL to use another API.
        await page.goto(f"{stack.bridge_url}/?api={elsewhere}&api_origin={elsewhere}#key={api_key}")
        job_id = await submit_from(page, "generate", 4)
        await finished(page)
        assert await page.evaluate("window.jobstream.indices") == list(range(4))
        assert (await page.evaluate("window.jobstream.source.url")).startswith(f"{stack.bridge_url}/v1/jobs/{job_id}/")
        # Under its policy the page's own script runs (the policy names it by its digest), and even a script
        # the page did not ship cannot reach another origin.
        await strict_page.goto(f"{stack.bridge_url}/")
        assert await strict_page.evaluate("() => typeof window.jobstream") == "object"
        blocked = await strict_page.evaluate(
            "(url) => fetch(url, {method: 'POST'}).then(() => 'sent', () => 'blocked')", f"{elsewhere}/v1/jobs"
        )
        assert blocked == "blocked"
        assert Capture.seen == []
    finally:
        capture.shutdown()
        capture.server_close()


@pytest.fixture
def other_origins(tmp_path: Path, stack: Settings) -> Iterator[dict[str, str]]:
    """The live page served by plain HTTP servers of their own: one on an allowed origin (a loopback port,
    like a front end's development server) and one on an origin the setting does not allow."""
    # A front end's own copy of the page names the bridge as its API (the bridge's names its own origin).
    served = httpx.get(f"{stack.bridge_url}/").text
    marker = '<meta name="jobstream-api" content="">'
    assert marker in served
    (tmp_path / "index.html").write_text(served.replace(marker, marker.replace('""', f'"{stack.bridge_url}"')))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    hosts = {"allowed": "127.0.0.1", "refused": "127.0.0.2"}
    servers = {name: http.server.ThreadingHTTPServer((host, 0), handler) for name, host in hosts.items()}
    for server in servers.values():
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {name: f"http://{hosts[name]}:{server.server_port}" for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()


async def test_a_page_on_an_allowed_origin_reads_the_stream_and_another_cannot(
    page: Page, stack: Settings, api_key: str, other_origins: dict[str, str]
) -> None:
    bridge = stack.bridge_url
    await page.goto(f"{other_origins['allowed']}/#key={api_key}")
    job_id = await submit_from(page, "generate", 12)
    await finished(page)
    assert await page.evaluate("window.jobstream.indices") == list(range(12))
    stream = await page.evaluate("window.jobstream.source.url")
    assert stream.startswith(f"{bridge}/v1/jobs/{job_id}/events")

    await page.goto(f"{other_origins['refused']}/#key={api_key}")
    await page.click("#submit")
    await page.wait_for_function("document.getElementById('error').textContent !== ''")
    assert "could not reach the API" in await page.inner_text("#error")
    # Nor can it read a stream, even with a valid URL: the browser withholds the response.
    outcome = await page.evaluate(
        """(url) => new Promise((done) => {
            const source = new EventSource(url);
            let events = 0;
            source.onmessage = () => { events += 1; };
            source.addEventListener("token", () => { events += 1; });
            source.onerror = () => { setTimeout(() => done({state: source.readyState, events}), 500); };
        })""",
        stream,
    )
    assert outcome == {"state": 2, "events": 0}


async def test_the_browsers_eventsource_survives_a_killed_bridge_exactly_once(
    page: Page, stack: Settings, api_key: str, reliability: Record
) -> None:
    reliability.fault = "3. SSE bridge SIGKILLed under a real browser's EventSource"
    await page.goto(f"{stack.bridge_url}/#key={api_key}")
    job_id = await submit_from(page, "drill-slow", 80)
    await page.wait_for_function("window.jobstream.indices.length >= 15")
    old = kill_process(stack, "sse-bridge")
    reliability.inputs += 1
    await page.wait_for_function("document.getElementById('connection').textContent.startsWith('reconnecting')")
    await wait_restarted(stack, "sse-bridge", old)
    await finished(page, timeout_s=120)
    reliability.jobs += 1
    indices = await page.evaluate("window.jobstream.indices")
    ids = await page.evaluate("window.jobstream.ids")
    reliability.events += len(ids)
    reliability.lost += len(set(range(80)) - set(indices))
    reliability.duplicated += len(indices) - len(set(indices))
    assert indices == list(range(80)), indices
    assert len(ids) == len(set(ids))
    assert ids == sorted(ids)
    assert await page.evaluate("window.jobstream.opens") >= 2  # it reconnected by itself
    assert await page.evaluate("document.getElementById('output').textContent") == await result_of(
        stack, api_key, job_id
    )
    reliability.note(f"EventSource opened {await page.evaluate('window.jobstream.opens')} times")


async def test_an_eventsource_left_open_after_the_terminal_event_stops_by_itself(
    page: Page, stack: Settings, api_key: str
) -> None:
    await page.goto(f"{stack.bridge_url}/#key={api_key}")
    await submit_from(page, "generate", 4)
    await finished(page)
    stream = await page.evaluate("window.jobstream.source.url")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url) if "/events" in request.url else None)
    # A careless page: it never calls close(). After the terminal event the browser reconnects once, gets
    # 204 No Content, and stops for good.
    outcome = await page.evaluate(
        """(url) => new Promise((done) => {
            const source = new EventSource(url);
            let opens = 0, terminal = 0;
            source.onopen = () => { opens += 1; };
            source.addEventListener("job.completed", () => { terminal += 1; });
            setTimeout(() => done({state: source.readyState, opens, terminal}), 4000);
        })""",
        stream,
    )
    assert outcome == {"state": 2, "opens": 1, "terminal": 1}
    assert len(requests) == 2, requests  # the stream, then one reconnect answered 204; no loop


async def test_the_page_renews_an_expired_stream_token_and_misses_nothing(
    page: Page, stack: Settings, api_key: str
) -> None:
    """A stream token lives an hour; a page that reconnects after that is refused (403), asks GetJob for a fresh
    one and resumes after its last event."""
    await page.goto(f"{stack.bridge_url}/#key={api_key}")
    async with job_service(stack) as stub:
        reply = await stub.SubmitJob(
            api.SubmitJobRequest(pipeline="drill-slow", prompt="It is a truth", params=GenerationParams(max_tokens=30)),
            metadata=auth(api_key),
        )
    tenant = tenant_of_key(load_keys(stack), api_key)
    assert tenant is not None
    expired = StreamTokens(stack).issue(reply.job_id, tenant, key_id(digest(api_key)), now=time.time() - 7200)
    await page.evaluate(
        "([jobId, url]) => { window.jobstream.jobId = jobId; watch(url); }",
        [reply.job_id, f"{stack.bridge_url}/v1/jobs/{reply.job_id}/events?token={expired}"],
    )
    await finished(page)
    assert await page.evaluate("window.jobstream.renewals") == 1
    assert await page.evaluate("window.jobstream.indices") == list(range(30))
