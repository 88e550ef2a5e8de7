"""Who may open a stream on this bridge, and how many: a stream token works only while the API key it was
issued to exists, and one token and one tenant hold at most their limits of open streams here (HTTP 429
with Retry-After past them, naming the limit)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from jobstream.auth import KeysFile, live_key_ids, read_keys_file
from jobstream.settings import Settings
from jobstream.stream_tokens import StreamGrant
from jobstream.tenants import limits_in


@dataclass(frozen=True)
class Refusal(Exception):
    status: int
    code: str
    message: str


class Ticket:
    """One admitted stream; `release` (once) when it ends."""

    def __init__(self, admission: Admission, token: str, tenant: str) -> None:
        self._admission = admission
        self._keys = (token, tenant)
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._release(*self._keys)


class Admission:
    """`read` gives the keys file; it is read once per stream opened (keys and limits are configuration,
    changed without a restart), and that one read answers both questions."""

    def __init__(self, read: Callable[[], KeysFile], settings: Settings) -> None:
        self.read = read
        self.settings = settings
        self._per_token: Counter[str] = Counter()
        self._per_tenant: Counter[str] = Counter()

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
        return Ticket(self, held, grant.tenant)

    def _release(self, token: str, tenant: str) -> None:
        for counter, key in ((self._per_token, token), (self._per_tenant, tenant)):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]

    def open_streams(self, tenant: str) -> int:
        return self._per_tenant[tenant]
