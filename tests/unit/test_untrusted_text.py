"""Untrusted text: a run of combining marks longer than UAX #15's stream-safe bound is refused wherever it
is, and normalisation slice by slice gives exactly what normalising the whole text gives."""

from __future__ import annotations

import random
import unicodedata

import pytest

from jobstream import untrusted_text
from jobstream.untrusted_text import MAX_NON_STARTERS, long_mark_run, nfc, refusal

ACUTE, CEDILLA_BELOW = "\u0301", "\u0316"
# Characters whose normalisation interacts: combining marks, precomposed letters, Hangul jamo and
# syllables, marks that decompose into two (U+0344), CJK, ASCII.
ALPHABET = [
    *map(chr, range(0x20, 0x7F)),
    *map(chr, range(0xC0, 0x17F)),
    *map(chr, range(0x300, 0x316)),
    "\u1100",
    "\u1161",
    "\u11a8",
    "\uac00",
    "\u4e00",
    "\u0344",
    "\u0345",
    "\U0001d165",
]


def test_a_run_of_marks_past_the_bound_is_refused_and_one_at_it_is_not() -> None:
    assert refusal("e" + ACUTE * MAX_NON_STARTERS) is None
    assert long_mark_run("Caf" + "e" + ACUTE * (MAX_NON_STARTERS + 1)) == 4
    message = refusal("x" * 10 + (ACUTE + CEDILLA_BELOW) * 80_000)
    assert message is not None
    assert "30 combining marks at character 10" in message


def test_marks_beyond_the_bmp_and_marks_that_decompose_count_too() -> None:
    assert long_mark_run("a" + "\U0001d165" * (MAX_NON_STARTERS + 1)) == 1
    assert long_mark_run("a" + "\u0344" * (MAX_NON_STARTERS + 1)) == 1  # decomposes to two marks
    # Characters beyond the BMP that are starters do not: a long run of emoji is text like any other.
    assert long_mark_run("\U0001f600" * 1000) is None


@pytest.mark.parametrize("seed", range(40))
async def test_normalising_slice_by_slice_equals_normalising_the_whole(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = random.Random(seed)
    text = "".join(chosen.choice(ALPHABET) for _ in range(chosen.randint(0, 3000)))
    if refusal(text):
        text = text[: long_mark_run(text)]
    monkeypatch.setattr(untrusted_text, "SLICE_CHARS", chosen.randint(1, 64))
    assert await nfc(text) == unicodedata.normalize("NFC", text)
