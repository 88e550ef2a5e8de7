"""Who may open a stream on this bridge, and how many: a stream token works only while the API key it was
issued to exists (an open stream ends within REVOCATION_CHECK_S of its key's revocation), and one token and
one tenant hold at most their limits of open streams here (HTTP 429 with Retry-After past them, naming the
limit)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from jobstream.auth import live_key_ids
from jobstream.keys_store import KeysFile, KeysFileError, read_keys_file
from jobstream.settings import Settings
from jobstream.stream_tokens import StreamGrant
from jobstream.tenants import limits_in

log = logging.getLogger(__name__)

# How often the open streams' keys are checked against the keys file (one read for all of them).
REVOCATION_CHECK_S = 5.0


@dataclass(frozen=True)
class Refusal(Exception):
    status: int
    code: str
    message: str


class Ticket:
    """One admitted stream; `release` (once) when it ends. `revoked` is set when its key is revoked: the
    stream must end then."""

    def __init__(self, admission: Admission, token: str, grant: StreamGrant) -> None:
        self._admission = admission
        self._keys = (token, grant.tenant)
        self.grant = grant
        self.revoked = asyncio.Event()
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._release(self)


class Admission:
    """`read` gives the keys file; it is read once per stream opened (keys and limits are configuration,
    changed without a restart), and that one read answers both questions."""

    def __init__(self, read: Callable[[], KeysFile], settings: Settings) -> None:
        self.read = read
        self.settings = settings
        self._per_token: Counter[str] = Counter()
        self._per_tenant: Counter[str] = Counter()
        self._tickets: set[Ticket] = set()
        self._sweeper: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, settings: Settings) -> Admission:
        return cls(lambda: read_keys_file(settings), settings)

    @staticmethod
    def key_is_live(grant: StreamGrant, document: KeysFile) -> bool:
        """Whether the key the token names still exists, and is a key of the token's own tenant."""
        return live_key_ids(document.keys).get(grant.key_id) == grant.tenant

    def admit(self, grant: StreamGrant, token: str, document: KeysFile) -> Ticket:
        """A ticket for one more stream; Refusal when the token or the tenant is at its limit."""
        limits = limits_in(document, self.settings, grant.tenant)
        held = hashlib.sha256(token.encode()).hexdigest()  # tokens themselves are not kept
        if limits.max_streams_per_token and self._per_token[held] >= limits.max_streams_per_token:
            raise Refusal(
                429,
                "resource_exhausted",
                f"this stream token already has {limits.max_streams_per_token} streams open, its limit "
                "(max_streams_per_token); close one, or ask GetJob for another token",
            )
        if limits.max_streams and self._per_tenant[grant.tenant] >= limits.max_streams:
            raise Refusal(
                429,
                "resource_exhausted",
                f"tenant {grant.tenant} already has {limits.max_streams} streams open, its limit (max_streams)",
            )
        self._per_token[held] += 1
        self._per_tenant[grant.tenant] += 1
        ticket = Ticket(self, held, grant)
        self._tickets.add(ticket)
        if self._sweeper is None:
            # Runs only while streams are open, so an idle bridge (or a test's event loop) has no task.
            self._sweeper = asyncio.create_task(self._sweep_while_open())
        return ticket

    def _release(self, ticket: Ticket) -> None:
        self._tickets.discard(ticket)
        token, tenant = ticket._keys
        for counter, key in ((self._per_token, token), (self._per_tenant, tenant)):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]

    def sweep(self, document: KeysFile) -> int:
        """Revoke the tickets whose key `document` no longer holds for their tenant; how many."""
        live = live_key_ids(document.keys)
        dead = [t for t in self._tickets if not t.revoked.is_set() and live.get(t.grant.key_id) != t.grant.tenant]
        for ticket in dead:
            ticket.revoked.set()
        return len(dead)

    async def _sweep_while_open(self) -> None:
        try:
            while self._tickets:
                await asyncio.sleep(REVOCATION_CHECK_S)
                with contextlib.suppress(KeysFileError):  # a file caught half-written revokes nothing
                    if revoked := self.sweep(self.read()):
                        log.info("%d streams ended: their API key was revoked", revoked)
        finally:
            self._sweeper = None

    def open_streams(self, tenant: str) -> int:
        return self._per_tenant[tenant]
