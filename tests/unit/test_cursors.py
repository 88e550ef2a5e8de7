"""jobstream/cursors.py: event ids sort as plain strings exactly in story order."""

from __future__ import annotations

import random

import pytest

from jobstream import cursors

MAX_TOKENS = 4096


def story(stage_tokens: list[int]) -> list[str]:
    """The ids of a whole job, in the order the story happens: stages with that many tokens each."""
    ids = [cursors.job_started()]
    for stage, tokens in enumerate(stage_tokens):
        ids.append(cursors.stage_started(stage))
        ids += [cursors.token(stage, index) for index in range(tokens)]
        ids.append(cursors.stage_completed(stage))
    ids.append(cursors.terminal())
    return ids


def test_story_order_is_string_order() -> None:
    ids = story([0, MAX_TOKENS, 1, MAX_TOKENS, 0])
    assert len(set(ids)) == len(ids)
    assert sorted(ids) == ids
    shuffled = ids[:]
    random.Random(7).shuffle(shuffled)
    assert sorted(shuffled) == ids


def test_ids_around_the_places_where_digits_carry() -> None:
    # 9 -> 10, 99 -> 100, ... and the largest token index a job may ask for: string order must not flip.
    indexes = [0, 1, 9, 10, 99, 100, 999, 1000, 4095, 4096, 9_999_999]
    tokens = [cursors.token(2, index) for index in indexes]
    assert sorted(tokens) == tokens
    assert cursors.stage_started(2) < tokens[0]
    assert tokens[-1] < cursors.stage_completed(2) < cursors.stage_started(3)


def test_many_stages_stay_before_the_terminal() -> None:
    ids = story([1] * 20)
    assert sorted(ids) == ids
    assert cursors.stage_completed(997) < cursors.terminal()


def test_the_documented_shapes() -> None:
    assert cursors.job_started() == "000.0.0000000"
    assert cursors.stage_started(0) == "001.1.0000000"
    assert cursors.token(0, 42) == "001.2.0000042"
    assert cursors.stage_completed(1) == "002.3.0000000"
    assert cursors.terminal() == "999.9.0000000"
    assert all(len(cursor) == 13 for cursor in story([3, 3]))


def test_empty_after_sorts_before_everything() -> None:
    # Watchers start from `after=""`: every real id must sort after it.
    assert all(cursor > "" for cursor in story([2]))


@pytest.mark.parametrize("value", [*story([2, 2]), cursors.token(0, MAX_TOKENS), "123.4.5678901"])
def test_valid(value: str) -> None:
    assert cursors.is_valid(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "000.0.000000",
        "000.0.00000000",
        "00.0.0000000",
        "0000.0.0000000",
        "000.00.0000000",
        "000-0-0000000",
        "abc.d.efghijk",
        " 000.0.0000000",
        "000.0.0000000 ",
        "000.0.0000000\n",
        "001.2.-000001",
        "\uff11\uff12\uff13.4.5678901",  # full-width digits sort after every ASCII id
    ],
)
def test_invalid(value: str) -> None:
    assert not cursors.is_valid(value)
