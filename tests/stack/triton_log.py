"""What Triton's log says about a job's model streams: which it started and how each ended."""

from __future__ import annotations

import re

from jobstream.settings import Settings
from tests.eventually import eventually

TRITON_STREAM_LINE = re.compile(r"stream '(?P<request>[^']+)' (?P<what>start|cancelled after|done)")


def triton_streams(settings: Settings, job_id: str) -> dict[str, str]:
    """Each model stream Triton started for this job (by request id) -> how it ended as far as Triton's log
    says: "start" (still running), "cancelled after" or "done"."""
    streams: dict[str, str] = {}
    for match in TRITON_STREAM_LINE.finditer((settings.logs_dir / "triton.log").read_text(errors="replace")):
        if match["request"].startswith(f"{job_id}/"):
            streams[match["request"]] = match["what"]
    return streams


async def triton_log_match(settings: Settings, job_id: str, pattern: str, timeout_s: float = 10.0) -> re.Match[str]:
    """The first line of Triton's log about this job's model stream that matches `pattern`."""
    log = settings.logs_dir / "triton.log"
    regex = re.compile(rf"stream '{job_id}/[^']*' {pattern}")
    match = await eventually(
        lambda: regex.search(log.read_text(errors="replace")), within_s=timeout_s, every_s=0.2, what=regex.pattern
    )
    assert match is not None
    return match
