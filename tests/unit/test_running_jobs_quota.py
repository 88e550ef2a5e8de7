"""The running-jobs quota across replicas: each admits at most its share of the headroom it read from
visibility, so replicas that cannot see each other's newest jobs still hold a tenant near its limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest
from temporalio.client import Client

from jobstream.tenants import TenantLimits
from services.job_service.quotas import OverQuota, RunningJobs


@dataclass
class Count:
    count: int


class Visibility:
    """A tenant's running jobs as Temporal's visibility reports them (what every replica reads)."""

    def __init__(self) -> None:
        self.running = 0

    async def count_workflows(self, query: str) -> Count:
        return Count(self.running)


def limits(max_running_jobs: int) -> TenantLimits:
    return TenantLimits(
        max_running_jobs=max_running_jobs,
        max_streams=0,
        max_streams_per_token=0,
        max_calls=0,
        max_uploads=0,
        max_input_bytes_in_flight=0,
    )


async def admitted(quota: RunningJobs, tries: int, limit: int) -> int:
    started = 0
    for _ in range(tries):
        try:
            async with quota.reserve("acme", limits(limit), 0):
                started += 1
        except OverQuota:
            pass
    return started


@pytest.mark.parametrize("replicas", [1, 2, 3])
async def test_replicas_that_read_the_same_figure_admit_together_fewer_than_the_limit_plus_replicas(
    replicas: int,
) -> None:
    visibility = Visibility()
    visibility.running = 3
    client = cast(Client, cast(Any, visibility))
    quotas = [RunningJobs(client, max_age_s=3600, replicas=replicas) for _ in range(replicas)]
    # Every replica takes a burst before any of them reads visibility again.
    total = sum([await admitted(quota, 20, limit=10) for quota in quotas])
    assert 3 + total < 10 + replicas
    assert 3 + total >= 10 - replicas  # and not far below it either


async def test_one_replica_reaches_the_limit_as_visibility_catches_up() -> None:
    """A tenant whose submits all land on one replica of two still gets its whole limit, read by read."""
    visibility = Visibility()
    client = cast(Client, cast(Any, visibility))
    quota = RunningJobs(client, max_age_s=0, replicas=2)
    for _ in range(8):
        visibility.running += await admitted(quota, 1, limit=4)
    assert visibility.running == 4
