"""Text from clients, handled in time linear in its length. Unicode normalisation reorders each run of
combining marks (non-starters) by sorting it, which CPython does in time quadratic in the run: one prompt of
a few hundred KiB of combining marks held a worker's event loop, and the GIL, for minutes. UAX #15's
stream-safe text format bounds those runs at 30, which no text in any language needs; longer runs are
refused, and the rest is normalised in slices between which the event loop runs."""

from __future__ import annotations

import asyncio
import re
import sys
import unicodedata
from functools import cache

MAX_NON_STARTERS = 30  # UAX #15, section 13
# Slices end before an ASCII character: no composition takes one as its second part, so NFC of the
# concatenation is the concatenation of each slice's NFC.
SLICE_CHARS = 64 * 1024
ASCII = re.compile(r"[\x00-\x7f]")


def _starts_with_non_starter(code_point: int) -> bool:
    char = chr(code_point)
    if unicodedata.combining(char):
        return True
    decomposition = unicodedata.decomposition(char).split()
    if decomposition and not decomposition[0].startswith("<"):
        return bool(unicodedata.combining(chr(int(decomposition[0], 16))))
    return False


@cache
def _non_starters() -> list[tuple[int, int]]:
    """The ranges of code points that are (or decompose to start with) non-starters."""
    ranges: list[tuple[int, int]] = []
    for code_point in range(sys.maxunicode + 1):
        if _starts_with_non_starter(code_point):
            if ranges and ranges[-1][1] == code_point - 1:
                ranges[-1] = (ranges[-1][0], code_point)
            else:
                ranges.append((code_point, code_point))
    return ranges


def _run_of(ranges: list[tuple[int, int]]) -> re.Pattern[str]:
    members = "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in ranges)
    return re.compile(f"[{members}]{{{MAX_NON_STARTERS + 1},}}")


@cache
def _coarse_run() -> re.Pattern[str]:
    """Runs of non-starters, counting every character beyond the BMP as one: a class of BMP ranges and one
    more range is several times faster to test than the exact one, so most text is passed by this alone."""
    return _run_of([*(span for span in _non_starters() if span[1] < 0x10000), (0x10000, sys.maxunicode)])


@cache
def _exact_run() -> re.Pattern[str]:
    return _run_of(_non_starters())


def prepare() -> None:
    """Build the patterns now (a fraction of a second), not in the first request that needs them."""
    _coarse_run()
    _exact_run()


def long_mark_run(text: str) -> int | None:
    """Where `text` has a run of more than MAX_NON_STARTERS non-starters (character index), or None."""
    for candidate in _coarse_run().finditer(text):
        found = _exact_run().search(text, candidate.start(), candidate.end())
        if found:
            return found.start()
    return None


def refusal(text: str) -> str | None:
    """Why `text` cannot be taken (a message for the client), or None."""
    position = long_mark_run(text)
    if position is None:
        return None
    return (
        f"has a run of more than {MAX_NON_STARTERS} combining marks at character {position} "
        "(text must be stream-safe, UAX #15)"
    )


async def nfc(text: str) -> str:
    """`text` in NFC, slice by slice, letting the event loop run between slices. Only for text that
    `refusal` accepted: each slice is then linear in its length."""
    parts: list[str] = []
    start = 0
    while start < len(text):
        end = start + SLICE_CHARS
        boundary = ASCII.search(text, end) if end < len(text) else None
        end = boundary.start() if boundary else len(text)
        parts.append(unicodedata.normalize("NFC", text[start:end]))
        start = end
        if start < len(text):
            await asyncio.sleep(0)
    return "".join(parts)
