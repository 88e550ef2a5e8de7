"""A lean SSE client for measuring: raw asyncio streams, HTTP/1.0 (close-delimited body), receive times.

httpx costs far more CPU per event than the bridge under test; with a thousand streams on two cores the
client would measure itself. This one stamps each read with time.time() and splits events on blank lines,
leaving JSON parsing to after the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jobstream.event_types import TERMINAL_TYPES as TERMINAL


@dataclass(frozen=True)
class Received:
    id: str
    event: str
    data: str
    received: float  # time.time() when the read holding the event's closing blank line returned

    @property
    def json(self) -> dict[str, Any]:
        value = json.loads(self.data)
        assert isinstance(value, dict)
        return value


class SseError(Exception):
    pass


def _parse_block(block: bytes, now: float) -> Received | None:
    event_id, event, data = "", "message", []
    for line in block.decode("utf-8").split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            event_id = value
        elif name == "event":
            event = value
        elif name == "data":
            data.append(value)
    return Received(event_id, event, "\n".join(data), now) if data else None


async def read_events(
    url: str,
    *,
    timeout_s: float = 120.0,
    opened: asyncio.Event | None = None,
    stop_at_terminal: bool = True,
    ca_file: Path | None = None,
) -> list[Received]:
    """Every event of one stream until its terminal event (or the server closing it); an https URL (the
    cluster's edge) over TLS, verified with `ca_file`."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if secure else 80)
    tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None) if secure else None
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    events: list[Received] = []
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, port, ssl=tls)
        try:
            writer.write(f"GET {target} HTTP/1.0\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1]
            if status != b"200":
                body = await reader.read()
                raise SseError(f"{url}: HTTP {status.decode()}: {body[:300]!r}")
            if opened is not None:
                opened.set()
            buffer = b""
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return events
                now = time.time()
                # A CR at the very end waits for its LF: replace() pairs it up on the next read.
                buffer = (buffer + chunk).replace(b"\r\n", b"\n")
                *blocks, buffer = buffer.split(b"\n\n")
                for block in blocks:
                    received = _parse_block(block, now)
                    if received is None:
                        continue
                    events.append(received)
                    if stop_at_terminal and received.event in TERMINAL:
                        return events
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
