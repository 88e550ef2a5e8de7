"""A job's partition, computed from its id, is where the producers' partitioner puts it; ownership splits the
partitions between replicas with none left over and none shared."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from jobstream.partitioning import owned_partitions, owner_of, partition_of

JOBS = [f"job_{i:026d}".replace("0", "a").replace("1", "b") for i in range(200)]


@pytest.mark.parametrize("partitions", [1, 3, 8, 64])
def test_the_partition_is_the_producers(partitions: int) -> None:
    every = list(range(partitions))
    for job_id in JOBS:
        assert partition_of(job_id, partitions) == DefaultPartitioner()(job_id.encode(), every, every)


@pytest.mark.parametrize(("replicas", "partitions"), [(1, 8), (2, 8), (3, 8), (4, 8), (8, 8), (3, 1)])
def test_every_partition_has_exactly_one_owner(replicas: int, partitions: int) -> None:
    shares = [owned_partitions(index, replicas, partitions) for index in range(replicas)]
    assert sorted(p for share in shares for p in share) == list(range(partitions))
    for index, share in enumerate(shares):
        assert all(owner_of(partition, replicas) == index for partition in share)
