"""The official openai npm package against the stack: its `responses.stream()` helper resumes a background
response whose stream broke at sequence K, and ends with the final response (tests/js/responses_stream.mjs).
npm installs the package from the lock on the first run (into tests/js/node_modules)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

from jobstream.settings import Settings

JS = Path(__file__).resolve().parent.parent / "js"
BROKEN_AT = 8


async def run(*command: str, env: dict[str, str] | None = None, timeout_s: float = 300) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=JS, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=timeout_s)
    assert process.returncode == 0, (command, err.decode()[-2000:])
    return out.decode()


@pytest.fixture(scope="module")
async def installed() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed for the JS SDK's test (the machines have them: see README)")
    if not (JS / "node_modules" / "openai" / "package.json").exists():
        await run("npm", "ci", "--no-audit", "--no-fund")


async def test_the_js_sdks_stream_helper_resumes_a_broken_response(
    installed: None, stack: Settings, api_key: str
) -> None:
    env = {
        **os.environ,
        "OPENAI_BASE_URL": f"{stack.bridge_url}/v1",
        "OPENAI_API_KEY": api_key,
        "BROKEN_AT": str(BROKEN_AT),
    }
    seen = json.loads((await run("node", "responses_stream.mjs", env=env, timeout_s=120)).strip().splitlines()[-1])
    before, after, final = seen["before"], seen["after"], seen["final"]
    assert before["numbers"] == list(range(BROKEN_AT + 1))
    assert after["numbers"] == list(range(BROKEN_AT + 1, BROKEN_AT + 1 + len(after["numbers"])))
    assert after["types"][-1] == "response.completed"
    assert final["status"] == "completed"
    assert "".join(before["deltas"] + after["deltas"]) == final["text"]
