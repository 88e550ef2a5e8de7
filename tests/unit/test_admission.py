"""The bridge's admission of streams: live keys only, and per-token and per-tenant limits that free up as
streams end."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from jobstream.auth import key_id
from jobstream.keys_store import KeysFile, digest
from jobstream.settings import Settings
from jobstream.stream_tokens import StreamGrant
from sse_bridge.admission import Admission, Refusal

JOB = "job_" + "a" * 26
KEY = digest("the acme key")
DOCUMENT = KeysFile({KEY: "acme"}, {"acme": {"max_streams": 3, "max_streams_per_token": 2}})


GATES: list[Admission] = []


@pytest.fixture(autouse=True)
async def _no_sweeper_outlives_its_test() -> AsyncIterator[None]:
    yield
    while GATES:
        sweeper = GATES.pop()._sweeper
        if sweeper is not None:
            sweeper.cancel()


def admission(settings: Settings | None = None) -> Admission:
    gate = Admission(lambda: DOCUMENT, settings or Settings())
    GATES.append(gate)
    return gate


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


async def test_a_token_holds_at_most_its_limit_and_gets_it_back_as_streams_end() -> None:
    gate = admission()
    first, _ = gate.admit(grant(), "token-a", DOCUMENT), gate.admit(grant(), "token-a", DOCUMENT)
    with pytest.raises(Refusal, match="max_streams_per_token") as refused:
        gate.admit(grant(), "token-a", DOCUMENT)
    assert refused.value.status == 429
    first.release()
    first.release()  # once only
    gate.admit(grant(), "token-a", DOCUMENT)
    assert gate.open_streams("acme") == 2


async def test_a_tenant_holds_at_most_its_limit_over_all_its_tokens() -> None:
    gate = admission()
    tickets = [gate.admit(grant(), token, DOCUMENT) for token in ("t1", "t2", "t3")]
    with pytest.raises(Refusal, match="max_streams"):
        gate.admit(grant(), "t4", DOCUMENT)
    for ticket in tickets:
        ticket.release()
    assert gate.open_streams("acme") == 0
    gate.admit(grant(), "t4", DOCUMENT)


async def test_no_limit_means_none() -> None:
    gate = admission(Settings(tenant_max_streams=0, stream_token_max_streams=0))
    unlimited = KeysFile({KEY: "acme"}, {})
    for _ in range(100):
        gate.admit(grant(), "same-token", unlimited)


async def test_a_revoked_keys_open_streams_are_told_to_end_and_the_others_are_not() -> None:
    other = digest("the other acme key")
    gate = admission()
    kept = gate.admit(grant(key_id(other)), "token-b", KeysFile({KEY: "acme", other: "acme"}, {}))
    revoked = gate.admit(grant(), "token-a", DOCUMENT)
    assert gate.sweep(KeysFile({KEY: "acme", other: "acme"}, {})) == 0
    assert gate.sweep(KeysFile({other: "acme"}, {})) == 1
    assert revoked.revoked.is_set()
    assert not kept.revoked.is_set()
    assert gate.sweep(KeysFile({other: "acme"}, {})) == 0  # told once
    revoked.release()
    kept.release()
    assert gate.open_streams("acme") == 0
