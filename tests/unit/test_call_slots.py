"""CallSlots: a tenant holds at most its limit, all together at most the total, and streams leave a quarter of
it to unary calls; a slot comes back once, however often its release is called."""

from __future__ import annotations

import pytest

from services.job_service.call_slots import CallRefused, CallSlots


def test_a_tenant_at_its_limit_is_refused_and_others_are_not() -> None:
    slots = CallSlots(total=10)
    releases = [slots.take("acme", 2, streaming=False) for _ in range(2)]
    with pytest.raises(CallRefused, match="max_calls 2"):
        slots.take("acme", 2, streaming=False)
    slots.take("globex", 2, streaming=False)
    releases[0]()
    releases[0]()  # twice: still one slot back
    assert slots.held("acme") == 1
    slots.take("acme", 2, streaming=False)


def test_streams_leave_room_for_unary_calls() -> None:
    slots = CallSlots(total=8)
    for number in range(6):
        slots.take(f"tenant-{number}", 0, streaming=True)
    with pytest.raises(CallRefused, match="as many calls as it can"):
        slots.take("late", 0, streaming=True)
    slots.take("late", 0, streaming=False)
    slots.take("late", 0, streaming=False)
    with pytest.raises(CallRefused):
        slots.take("later", 0, streaming=False)
