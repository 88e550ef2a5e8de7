"""The JobService's calls in flight, counted by this process: a tenant holds at most its `max_calls`, all
tenants together at most `total`, and streams (WatchJob) at most three quarters of that, so a unary call
(SubmitJob, GetJob, CancelJob) always finds room beside any number of watchers. gRPC's own limit
(`maximum_concurrent_rpcs`) is not used: it counts a call from its headers on, anonymous ones included, and
would let any client fill it with calls that never send their message."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CallRefused(Exception):
    message: str


class CallSlots:
    def __init__(self, total: int) -> None:
        self.total = total
        self.streams_max = max(1, total * 3 // 4)
        self._per_tenant: Counter[str] = Counter()
        self._calls = 0
        self._streams = 0

    def take(self, tenant: str, tenant_limit: int, streaming: bool) -> Callable[[], None]:
        """One slot, and the function that gives it back (once) when the call ends; CallRefused (nothing
        taken) when a limit is reached."""
        if tenant_limit and self._per_tenant[tenant] >= tenant_limit:
            raise CallRefused(
                f"tenant {tenant} has {self._per_tenant[tenant]} calls in flight, its limit (max_calls "
                f"{tenant_limit}); retry when one has ended"
            )
        if self._calls >= self.total or (streaming and self._streams >= self.streams_max):
            raise CallRefused("the JobService is serving as many calls as it can; retry shortly")
        self._per_tenant[tenant] += 1
        self._calls += 1
        self._streams += streaming
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._per_tenant[tenant] -= 1
            if not self._per_tenant[tenant]:
                del self._per_tenant[tenant]
            self._calls -= 1
            self._streams -= streaming

        return release

    def held(self, tenant: str) -> int:
        return self._per_tenant[tenant]
