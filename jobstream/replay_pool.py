"""A pool of replay consumers shared fairly between owners (tenants): one owner holds at most `per_owner` of
them, so it cannot make everyone else's reconnects wait, and watchers are served first come, first served.

A watcher waits as long as it takes rather than being ended after a while: its stream is kept alive by the
bridge's keep-alives meanwhile, and a stream that is ended reconnects and asks again, so ending it would only
put it at the back of the line (after a bridge restart, thousands of streams would cycle through refusals)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

Item = TypeVar("Item")


class ReplayPool(Generic[Item]):
    def __init__(self, per_owner: int) -> None:
        self.per_owner = per_owner
        self._free: list[Item] = []
        self._held: dict[str, int] = {}  # owner -> items it holds
        self._waiting: deque[tuple[str, asyncio.Future[Item]]] = deque()

    def add(self, item: Item) -> None:
        self._free.append(item)
        self._serve()

    def drain(self) -> list[Item]:
        """The free items, taken out of the pool (at shutdown)."""
        free, self._free = self._free, []
        return free

    def held(self, owner: str) -> int:
        return self._held.get(owner, 0)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def take(self, owner: str) -> Item:
        """An item for `owner`: at once when one is free and the owner holds fewer than its share, else the
        first one freed after every earlier waiter that may take it has been served."""
        if self._free and self.held(owner) < self.per_owner:
            return self._hand(owner)
        waiter: asyncio.Future[Item] = asyncio.get_running_loop().create_future()
        self._waiting.append((owner, waiter))
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give_back(waiter.result(), owner)  # handed over just as the watcher left
            else:
                self._waiting.remove((owner, waiter))
            raise

    def give_back(self, item: Item, owner: str) -> None:
        self._held[owner] -= 1
        if not self._held[owner]:
            del self._held[owner]
        self._free.append(item)
        self._serve()

    def _hand(self, owner: str) -> Item:
        self._held[owner] = self.held(owner) + 1
        return self._free.pop()

    def _serve(self) -> None:
        """Free items to the earliest waiters whose owners are under their share."""
        for owner, waiter in list(self._waiting):
            if not self._free:
                return
            if self.held(owner) < self.per_owner:
                self._waiting.remove((owner, waiter))
                waiter.set_result(self._hand(owner))
