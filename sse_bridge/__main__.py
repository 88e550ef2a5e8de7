"""SSE bridge process: `python -m sse_bridge` serves the events of every job over HTTP."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import uvicorn

from jobstream.event_stream import EventStream
from jobstream.job_directory import JobDirectory
from jobstream.payload_store import PayloadStore
from jobstream.settings import get_settings
from jobstream.stream_tokens import StreamTokens
from jobstream.temporal_client import connect
from sse_bridge.app import Bridge, create_app


@contextlib.asynccontextmanager
async def open_bridge() -> AsyncIterator[Bridge]:
    settings = get_settings()
    directory = JobDirectory(await connect(settings), PayloadStore(settings))
    stream = EventStream(settings, directory.locate, directory.final_event)
    await stream.start()
    try:
        yield Bridge(stream, directory, StreamTokens(settings), settings.sse_keepalive_s)
    finally:
        await stream.stop()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sse-bridge %(levelname)s %(message)s")
    settings = get_settings()
    uvicorn.run(
        create_app(open_bridge),
        host=settings.bind_address,
        port=settings.bridge_port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
