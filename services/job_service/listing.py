"""ListJobs' order and paging: newest (create time) first, with a cursor of our own.

Temporal's SQL visibility store lists open workflows first and closed ones by close time, and refuses
ORDER BY, so its order is not "newest first" as soon as jobs finish out of order. Pages are therefore cut
here: jobs started at or before the cursor are read in time windows going back (each window sorted here;
windows are disjoint, so their concatenation is in order) until a page and one more job are found, or
nothing older is left. A window is read no further than a few pages' worth: one that holds more is narrowed
and read again, so a page costs about its own size however many jobs the tenant started in a minute. The
page token is the (start time, job id) of the last job on the page, plus the status filter it was issued
for; anything else is refused as INVALID_ARGUMENT.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.client import Client, WorkflowExecution

FIRST_WINDOW = timedelta(minutes=1)
WINDOW_GROWTH = 4
# The service's clock may trail Temporal's a little: the first window reaches a bit into the future.
CLOCK_SLACK = timedelta(minutes=1)
# No job started before this: a page token naming an earlier time was not made by ListJobs.
EARLIEST = datetime(2020, 1, 1, tzinfo=UTC)
# Windows are narrowed down to this at most: more jobs than a window may hold started within one are rare.
NARROWEST = timedelta(milliseconds=1)


def window_limit(page_size: int) -> int:
    """The most executions one window is read for (more: it is narrowed and read again)."""
    return 2 * page_size + 10


class BadPageToken(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    start_time: datetime
    job_id: str
    status: str  # the status filter the token was issued for ("" for none)

    def encode(self) -> str:
        data = {"t": self.start_time.isoformat(), "j": self.job_id, "s": self.status}
        return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()

    @classmethod
    def decode(cls, token: str, status: str) -> Cursor:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
            cursor = cls(datetime.fromisoformat(data["t"]), str(data["j"]), str(data["s"]))
        except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error) as exc:
            raise BadPageToken("is not a token returned by ListJobs") from exc
        if cursor.start_time.tzinfo is None:
            raise BadPageToken("is not a token returned by ListJobs")
        # A forged date far from now would walk the time windows past datetime's range (OverflowError).
        if not EARLIEST <= cursor.start_time <= datetime.now(UTC) + CLOCK_SLACK:
            raise BadPageToken("is not a token returned by ListJobs")
        if cursor.status != status:
            raise BadPageToken("was issued for another status filter; the other fields must stay the same")
        return cursor


def _order(execution: WorkflowExecution) -> tuple[datetime, str]:
    return (execution.start_time, execution.id)


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def newest_first(
    client: Client, query: str, page_size: int, cursor: Cursor | None, status: str
) -> tuple[list[WorkflowExecution], str]:
    """One page of the executions matching `query`, newest first, and the next page's token ("" at the end)."""
    upper = cursor.start_time if cursor else datetime.now(UTC) + CLOCK_SLACK
    span = FIRST_WINDOW
    found: list[WorkflowExecution] = []
    limit = window_limit(page_size)
    while len(found) <= page_size:
        lower = upper - span
        in_window = f"{query} AND StartTime > '{_time(lower)}' AND StartTime <= '{_time(upper)}'"
        narrow = span > NARROWEST
        window = [
            execution async for execution in client.list_workflows(in_window, limit=limit + 1 if narrow else None)
        ]
        if narrow and len(window) > limit:
            # Too many to read: narrow it to about half a limit's worth, as far as a count (no rows) says.
            crowd = (await client.count_workflows(in_window)).count
            span = max(min(span * (limit / 2) / max(crowd, 1), span / 2), NARROWEST)
            continue
        if cursor:
            window = [e for e in window if _order(e) < (cursor.start_time, cursor.job_id)]
        found += sorted(window, key=_order, reverse=True)
        if len(found) > page_size:
            break
        older = client.list_workflows(f"{query} AND StartTime <= '{_time(lower)}'", limit=1, page_size=1)
        if not [execution async for execution in older]:
            break
        # Widen the next window only past a sparse one: after a crowded stretch, the next is likely crowded too.
        upper, span = lower, span * WINDOW_GROWTH if len(window) * WINDOW_GROWTH <= limit else span
    page = found[:page_size]
    if len(found) <= page_size:
        return page, ""
    return page, Cursor(page[-1].start_time, page[-1].id, status).encode()
