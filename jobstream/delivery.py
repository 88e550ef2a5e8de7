"""One event on its way to watchers (`Delivery`), and the order a watcher is told events in: each id once, in
story order, a stage's tokens without a gap, nothing after the terminal event (`Told`, `Sequence`)."""

from __future__ import annotations

from jobstream import cursors
from jobstream.event_log import LogLocator
from jobstream.event_types import TERMINAL_TYPES, EventType
from jobstream.tracing import RecordHeaders
from jobstream.v1.event_pb2 import JobEvent


class Delivery:
    """One event on its way to watchers: the hub routes one per record to every watcher of the job, so what is
    derived from the event (its encoding at the edge, its neighbours' ids) is computed once, when first asked."""

    __slots__ = ("_after", "_before", "encoded", "event", "headers", "locator", "routed_at")

    def __init__(
        self,
        event: JobEvent,
        locator: LogLocator | None = None,
        headers: RecordHeaders | None = None,
        routed_at: float = 0.0,
    ) -> None:
        self.event = event
        self.locator = locator  # where the tail read it; None for a replayed or rebuilt event
        self.headers = headers  # the record's (a producer's trace context, when traces are on)
        # When the tail handed the record to the hub (Unix time; 0 for a replayed or rebuilt event): splits an
        # event's delivery lag into the log's part and the edge's.
        self.routed_at = routed_at
        self.encoded: bytes | None = None  # the edge's wire form, cached there by the first watcher's encoder
        self._before: str | None = None
        self._after: str | None = None

    @property
    def token_before(self) -> str:
        """The id of the token just before this one in its stage ("" if none)."""
        if self._before is None:
            self._before = cursors.next_token(self.event.id, -1) or ""
        return self._before

    @property
    def token_after(self) -> str:
        """The id the token after this one has, if this is a token ("" otherwise: no id matches it)."""
        if self._after is None:
            self._after = cursors.next_token(self.event.id) or ""
        return self._after


def through_terminal(ready: list[Delivery]) -> tuple[list[Delivery], bool]:
    """The events up to the job's terminal one, and whether it is among them: nothing follows it."""
    for index, delivery in enumerate(ready):
        if delivery.event.type in TERMINAL_TYPES:
            return ready[: index + 1], True
    return ready, False


class Told:
    """What one watcher has been told so far: the last event id delivered, and whether the story ended."""

    def __init__(self, after: str) -> None:
        self.sequence = Sequence(after)
        self.last = after
        self.ended = False

    def told(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Of `deliveries`, what is told now (in order, once each, up to the terminal event)."""
        ready, self.ended = through_terminal(
            [each for delivery in deliveries for each in self.sequence.accept(delivery)]
        )
        if ready:
            self.last = ready[-1].event.id
        return ready


class Sequence:
    """Which events a watcher delivers: each id once, in story order, and a stage's tokens without a gap.

    A gap is possible: when the broker restarts, a batch of a model stage's tokens can time out in the
    producer while a later batch still reaches the log. The attempt then fails and its retry re-publishes
    from the first missing index; a watcher that delivered the tokens after the gap would drop the late
    ones as already seen. So a token is delivered only after its predecessor, and waits until then.
    """

    def __init__(self, after: str) -> None:
        self.last = after
        # The id the token after `last` has, if `last` is a token ("" otherwise: no id matches it).
        self._next = cursors.next_token(after) or ""
        self._held: dict[str, Delivery] = {}

    def accept(self, delivery: Delivery) -> list[Delivery]:
        event = delivery.event
        if event.id <= self.last:
            return []  # re-sent by a retried activity, or before the watcher's cursor
        if event.type == EventType.TOKEN and event.token.index > 0 and self.last != delivery.token_before:
            self._held[event.id] = delivery
            return []
        ready = [delivery]
        self._advance(delivery)
        while (held := self._held.pop(self._next, None)) is not None:
            ready.append(held)
            self._advance(held)
        if self._held:
            # Tokens held behind a later non-token event (a failed or cancelled job) can never come in order.
            self._held = {key: value for key, value in self._held.items() if key > self.last}
        return ready

    def _advance(self, delivery: Delivery) -> None:
        self.last = delivery.event.id
        self._next = delivery.token_after
