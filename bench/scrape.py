"""A process's Prometheus metrics as the benchmark reads them: one scrape, a counter's value, and the
quantiles of a histogram between two scrapes (what happened in between, not since the process started)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def buckets(self, histogram: str) -> dict[float, float]:
        """Upper bound -> cumulative count."""
        return {
            float(dict(labels)["le"]): count
            for (name, labels), count in self.samples.items()
            if name == f"{histogram}_bucket"
        }


async def scrape(url: str) -> Scrape:
    async with httpx.AsyncClient() as client:
        text = (await client.get(url, timeout=5.0)).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return Scrape(samples)


def quantile_between(before: Scrape, after: Scrape, histogram: str, q: float) -> float | None:
    """The q-quantile of what `histogram` observed between the scrapes, interpolated linearly inside its bucket
    (as Prometheus's histogram_quantile does); None if it observed nothing. Seconds in, seconds out."""
    earlier = before.buckets(histogram)
    counts = sorted((bound, count - earlier.get(bound, 0.0)) for bound, count in after.buckets(histogram).items())
    if not counts or counts[-1][1] <= 0:
        return None
    rank = q * counts[-1][1]
    lower, below = 0.0, 0.0
    for bound, cumulative in counts:
        if cumulative >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its bound is all that is known
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return lower
