"""The bridge's admission of streams: live keys only, and per-token and per-tenant limits that free up as
streams end."""

from __future__ import annotations

import pytest

from jobstream.auth import KeysFile, digest, key_id
from jobstream.settings import Settings
from jobstream.stream_tokens import StreamGrant
from sse_bridge.admission import Admission, Refusal

JOB = "job_" + "a" * 26
KEY = digest("the acme key")
DOCUMENT = KeysFile({KEY: "acme"}, {"acme": {"max_streams": 3, "max_streams_per_token": 2}})


def admission(settings: Settings | None = None) -> Admission:
    return Admission(lambda: DOCUMENT, settings or Settings())


def grant(kid: str = key_id(KEY)) -> StreamGrant:
    return StreamGrant(JOB, "acme", kid)


def test_a_token_of_a_revoked_key_is_not_live() -> None:
    assert Admission.key_is_live(grant(), DOCUMENT)
    assert not Admission.key_is_live(grant("k-revoked"), DOCUMENT)
    assert not Admission.key_is_live(grant(), KeysFile({}, {}))


def test_a_token_naming_another_tenants_key_is_not_live() -> None:
    other = digest("the globex key")
    document = KeysFile({KEY: "acme", other: "globex"}, {})
    assert not Admission.key_is_live(grant(key_id(other)), document)


def test_a_token_holds_at_most_its_limit_and_gets_it_back_as_streams_end() -> None:
    gate = admission()
    first, _ = gate.admit(grant(), "token-a", DOCUMENT), gate.admit(grant(), "token-a", DOCUMENT)
    with pytest.raises(Refusal, match="max_streams_per_token") as refused:
        gate.admit(grant(), "token-a", DOCUMENT)
    assert refused.value.status == 429
    first.release()
    first.release()  # once only
    gate.admit(grant(), "token-a", DOCUMENT)
    assert gate.open_streams("acme") == 2


def test_a_tenant_holds_at_most_its_limit_over_all_its_tokens() -> None:
    gate = admission()
    tickets = [gate.admit(grant(), token, DOCUMENT) for token in ("t1", "t2", "t3")]
    with pytest.raises(Refusal, match="max_streams"):
        gate.admit(grant(), "t4", DOCUMENT)
    for ticket in tickets:
        ticket.release()
    assert gate.open_streams("acme") == 0
    gate.admit(grant(), "t4", DOCUMENT)


def test_no_limit_means_none() -> None:
    gate = admission(Settings(tenant_max_streams=0, stream_token_max_streams=0))
    unlimited = KeysFile({KEY: "acme"}, {})
    for _ in range(100):
        gate.admit(grant(), "same-token", unlimited)
