"""ListJobs page tokens: a cursor of our own that round-trips, and anything else is refused."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from services.job_service.listing import BadPageToken, Cursor


def test_a_cursor_round_trips_with_microseconds() -> None:
    cursor = Cursor(datetime(2026, 11, 26, 19, 37, 19, 536905, tzinfo=UTC), "job_" + "a" * 26, "SUCCEEDED")
    assert Cursor.decode(cursor.encode(), "SUCCEEDED") == cursor


@pytest.mark.parametrize(
    "token",
    [
        "%%%",
        "not base64 at all!",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b'{"t": "yesterday", "j": "x", "s": ""}').decode(),
        base64.urlsafe_b64encode(b'{"t": "2026-11-26T19:37:19", "j": "x", "s": ""}').decode(),  # no time zone
        base64.urlsafe_b64encode(b'{"j": "x", "s": ""}').decode(),
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        "\u00e9t\u00e9",
        # Forged dates far from now would walk the time windows out of datetime's range (OverflowError).
        Cursor(datetime(1, 1, 1, tzinfo=UTC), "job_" + "a" * 26, "").encode(),
        Cursor(datetime(9999, 12, 31, tzinfo=UTC), "job_" + "a" * 26, "").encode(),
    ],
)
def test_anything_else_is_a_bad_page_token(token: str) -> None:
    with pytest.raises(BadPageToken):
        Cursor.decode(token, "")


def test_a_token_only_serves_the_status_filter_it_was_issued_for() -> None:
    token = Cursor(datetime.now(UTC), "job_" + "b" * 26, "").encode()
    with pytest.raises(BadPageToken, match="status filter"):
        Cursor.decode(token, "FAILED")
