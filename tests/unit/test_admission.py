"""The bridge's admission of streams: live keys only, and per-token and per-tenant limits that free up as
streams end."""

from __future__ import annotations

import pytest

from jobstream.stream_tokens import StreamGrant
from jobstream.tenants import TenantLimits
from sse_bridge.admission import Admission, Refusal

JOB = "job_" + "a" * 26
LIMITS = {"acme": TenantLimits(max_running_jobs=0, max_streams=3, max_streams_per_token=2)}


def admission(live: dict[str, str] | None = None) -> Admission:
    return Admission(lambda: live if live is not None else {"k1": "acme"}, LIMITS.__getitem__)


def grant(key_id: str = "k1") -> StreamGrant:
    return StreamGrant(JOB, "acme", key_id)


def test_a_token_of_a_revoked_key_is_not_live() -> None:
    assert admission().key_is_live(grant())
    assert not admission().key_is_live(grant("k-revoked"))
    assert not admission({}).key_is_live(grant())


def test_a_token_holds_at_most_its_limit_and_gets_it_back_as_streams_end() -> None:
    gate = admission()
    first, _ = gate.admit(grant(), "token-a"), gate.admit(grant(), "token-a")
    with pytest.raises(Refusal, match="max_streams_per_token") as refused:
        gate.admit(grant(), "token-a")
    assert refused.value.status == 429
    first.release()
    first.release()  # once only
    gate.admit(grant(), "token-a")
    assert gate.open_streams("acme") == 2


def test_a_tenant_holds_at_most_its_limit_over_all_its_tokens() -> None:
    gate = admission()
    tickets = [gate.admit(grant(), token) for token in ("t1", "t2", "t3")]
    with pytest.raises(Refusal, match="max_streams"):
        gate.admit(grant(), "t4")
    for ticket in tickets:
        ticket.release()
    assert gate.open_streams("acme") == 0
    gate.admit(grant(), "t4")


def test_no_limit_means_none() -> None:
    unlimited = TenantLimits(max_running_jobs=0, max_streams=0, max_streams_per_token=0)
    gate = Admission(lambda: {"k1": "acme"}, lambda _: unlimited)
    for _ in range(100):
        gate.admit(grant(), "same-token")
