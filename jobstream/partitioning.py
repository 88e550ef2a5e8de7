"""Which events partition holds a job's story, and which SSE bridge replica tails it.

Any process computes a job's partition from its id alone, the way the producers' partitioner places it
(murmur2 of the key, as Kafka's Java client: aiokafka's default partitioner). So the JobService can name it in
the events URL, the edge can route the stream by it, and a bridge can re-derive it from the signed job id
instead of trusting the URL. It holds only while the partition count stays what it was when the job started:
the agreement record (jobstream/agreement.py) refuses a process that disagrees on it.

Ownership is static, partition p to replica p % replicas: a pure function both the bridges and the edge's
configuration compute, with nothing to coordinate at run time (README, "Bridges that scale out", says why not
a consumer group)."""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_of(job_id: str, partitions: int) -> int:
    return int(murmur2(job_id.encode()) & 0x7FFFFFFF) % partitions


def owned_partitions(replica_index: int, replicas: int, partitions: int) -> frozenset[int]:
    return frozenset(p for p in range(partitions) if p % replicas == replica_index)


def owner_of(partition: int, replicas: int) -> int:
    return partition % replicas
