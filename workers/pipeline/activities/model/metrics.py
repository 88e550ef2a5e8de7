"""What a model attempt tells Prometheus, through the Temporal runtime's meter (served by the worker at
/metrics): attempts (first or retry) and how they ended, tokens generated, time to the first token, the time
between tokens and Kafka's produce latency.

The per-token observations are kept in lists and recorded when the attempt ends, so the token path pays an
append, not a call into the runtime's meter. With metrics off nothing is kept."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

T = TypeVar("T")


class ModelMetrics:
    def __init__(self, model: str, retry: bool, enabled: bool = True) -> None:
        self.meter = activity.metric_meter().with_additional_attributes({"model": model})
        self.retry = retry
        self.enabled = enabled
        self.gaps: list[float] = []
        self.produce_latencies: list[float] = []
        self.tokens = 0  # new tokens this attempt delivered
        self.first_token_at: float | None = None  # time.monotonic() of this attempt's first new token
        self._last_token: float | None = None

    def token_arrived(self) -> None:
        now = time.monotonic()
        if self.enabled and self._last_token is not None:
            self.gaps.append(now - self._last_token)
        self._last_token = now

    def token_delivered(self) -> None:
        self.tokens += 1
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()

    async def produced(self, publish: Awaitable[T]) -> T:
        """`publish`'s result, its time from send to acknowledgement kept."""
        started = time.monotonic()
        located = await publish
        if self.enabled:
            self.produce_latencies.append(time.monotonic() - started)
        return located

    def acknowledged(self, send: asyncio.Future[Any]) -> asyncio.Future[Any]:
        """`send`, its time to acknowledgement kept when Kafka acknowledges it."""
        if self.enabled:
            started = time.monotonic()
            latencies = self.produce_latencies
            send.add_done_callback(lambda _: latencies.append(time.monotonic() - started))
        return send

    @contextlib.asynccontextmanager
    async def attempt(self) -> AsyncIterator[None]:
        started = time.monotonic()
        outcome, error_type = "succeeded", ""
        try:
            yield
        except ApplicationError as exc:
            outcome, error_type = "failed", exc.type or "ApplicationError"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as exc:
            outcome, error_type = "failed", type(exc).__name__
            raise
        finally:
            if self.enabled:
                self.record(started, outcome, error_type)

    def record(self, started: float, outcome: str, error_type: str) -> None:
        attributes = {"retry": str(self.retry).lower(), "outcome": outcome, "error_type": error_type}
        self.meter.create_counter(
            "jobstream_model_attempts", "Model stage attempts, by how they ended (retry: not the first)."
        ).add(1, attributes)
        self.meter.create_counter("jobstream_tokens_generated", "Tokens a model stage delivered.").add(self.tokens)
        if self.first_token_at is not None:
            self.meter.create_histogram_timedelta(
                "jobstream_time_to_first_token", "From an attempt's start to its first new token.", "duration"
            ).record(timedelta(seconds=self.first_token_at - started))
        gaps = self.meter.create_histogram_timedelta(
            "jobstream_inter_token", "Between two tokens of one attempt, as Triton streamed them.", "duration"
        )
        for gap in self.gaps:
            gaps.record(timedelta(seconds=gap))
        produce = self.meter.create_histogram_timedelta(
            "jobstream_kafka_produce",
            "From a token's send to the events topic to Kafka's acknowledgement (acks=all).",
            "duration",
        )
        for latency in self.produce_latencies:
            produce.record(timedelta(seconds=latency))
