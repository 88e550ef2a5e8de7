"""What every replica of the JobService and the SSE bridge must share, checked as each one starts: the
stream-token secret (a token one replica signs, any other must verify) and the events topic's partition count
(where a job's events live; it must never change while jobs run). The first replica to start records the
deployment's values in the object store, which they all reach; a replica configured otherwise refuses to start
with an error naming the setting, rather than serve streams that fail on its neighbours. Only a fingerprint of
the secret is stored. The API keys are not compared: they change while replicas run, through one shared file."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io

from minio.error import S3Error
from pydantic import BaseModel, ConfigDict

from jobstream.payload_store import PayloadStore
from jobstream.settings import Settings
from jobstream.stream_tokens import signing_secret

RECORD = "_jobstream/agreement.json"


class Agreement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    stream_token_secret: str  # a fingerprint: HMAC of a fixed text, keyed by the secret
    events_partitions: int


class Disagreement(SystemExit):
    pass


def of(settings: Settings, partitions: int) -> Agreement:
    """This process's view; `partitions`: the events topic's partition count as Kafka reports it."""
    if partitions != settings.events_partitions:
        raise Disagreement(
            f"the events topic {settings.events_topic} has {partitions} partitions but JOBSTREAM_EVENTS_PARTITIONS "
            f"is {settings.events_partitions}: set it to the topic's count (which must never change while jobs run)"
        )
    secret = signing_secret(settings).encode()
    fingerprint = hmac.new(secret, b"jobstream replicas agree", hashlib.sha256).hexdigest()[:32]
    return Agreement(stream_token_secret=fingerprint, events_partitions=partitions)


def compare(recorded: Agreement, mine: Agreement) -> None:
    if recorded.stream_token_secret != mine.stream_token_secret:
        raise Disagreement(
            "this replica's stream-token secret (JOBSTREAM_STREAM_TOKEN_SECRET) differs from the one the other "
            "replicas sign with: give every JobService and bridge the same secret (after rotating it on purpose, "
            f"delete {RECORD} from the bucket)"
        )
    if recorded.events_partitions != mine.events_partitions:
        raise Disagreement(
            f"the events topic had {recorded.events_partitions} partitions when the first replica started and has "
            f"{mine.events_partitions} now: the partition count must never change while jobs run"
        )


async def check(settings: Settings, store: PayloadStore, partitions: int) -> None:
    """Disagreement (a SystemExit with the reason) when this replica's settings differ from the deployment's."""
    mine = of(settings, partitions)
    try:
        response = await asyncio.to_thread(store.client.get_object, store.bucket, RECORD)
    except S3Error as exc:
        if exc.code not in ("NoSuchKey", "NoSuchObject"):
            raise
        data = mine.model_dump_json().encode()
        await asyncio.to_thread(
            store.client.put_object, store.bucket, RECORD, io.BytesIO(data), len(data), "application/json"
        )
        return
    try:
        recorded = Agreement.model_validate_json(response.read())
    finally:
        response.close()
        response.release_conn()
    compare(recorded, mine)
