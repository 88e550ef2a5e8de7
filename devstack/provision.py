"""One-time resources the services expect (all idempotent): the events topic, the payload bucket with its
retention, and the services' MinIO user, which may touch that bucket only. Only this uses MinIO's root
user: a presigned URL names the user that signed it, and the services' cannot reach any other bucket."""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from minio.commonconfig import ENABLED, Filter
from minio.credentials.providers import StaticProvider
from minio.error import MinioAdminException, S3Error
from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule
from minio.minioadmin import MinioAdmin
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError

from jobstream.connections import kafka_options, temporal_connect_options
from jobstream.payload_store import (
    RETENTION_DAYS,
    UPLOADS,
    UPLOADS_RETENTION_DAYS,
    minio_client,
    minio_http_client,
)
from jobstream.search_attributes import SEARCH_ATTRIBUTE_TYPES
from jobstream.settings import Settings, get_settings
from jobstream.stream_tokens import signing_secret


async def create_events_topic(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        if settings.events_topic in await admin.list_topics():
            return
        replicas = settings.events_replication
        configs = {"min.insync.replicas": str(replicas // 2 + 1), "unclean.leader.election.enable": "false"}
        topic = NewTopic(settings.events_topic, settings.events_partitions, replicas, topic_configs=configs)
        with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
            await admin.create_topics([topic])
    finally:
        await admin.close()


def bucket_policy(bucket: str) -> dict[str, object]:
    """What the services' user may do: read and write the bucket's objects, and see the bucket itself."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
            },
        ],
    }


def provision_store(settings: Settings) -> None:
    root = minio_client(settings, settings.minio_root_user, settings.minio_root_password)
    bucket = settings.minio_bucket
    if not root.bucket_exists(bucket):
        try:
            root.make_bucket(bucket)
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
    rules = [
        Rule(
            ENABLED, rule_filter=Filter(prefix=""), rule_id="job-retention", expiration=Expiration(days=RETENTION_DAYS)
        ),
        # Where two rules match, the earlier expiry wins.
        Rule(
            ENABLED,
            rule_filter=Filter(prefix=f"{UPLOADS}/"),
            rule_id="upload-retention",
            expiration=Expiration(days=UPLOADS_RETENTION_DAYS),
        ),
    ]
    root.set_bucket_lifecycle(bucket, LifecycleConfig(rules))
    if settings.minio_access_key == settings.minio_root_user:
        return  # an operator who chose to run the services as root (not advised)
    admin = MinioAdmin(
        endpoint=settings.minio_endpoint,
        credentials=StaticProvider(settings.minio_root_user, settings.minio_root_password),
        region=settings.minio_region,
        secure=settings.minio_secure,
        http_client=minio_http_client(settings),
    )
    policy = f"{bucket}-objects"
    admin.policy_add(policy, policy=bucket_policy(bucket))
    admin.user_add(settings.minio_access_key, settings.minio_secret_key)
    try:
        admin.attach_policy([policy], user=settings.minio_access_key)
    except MinioAdminException as exc:
        if "already" not in str(exc).lower():  # attached on an earlier run
            raise


async def provision(settings: Settings) -> None:
    await create_events_topic(settings)
    await asyncio.to_thread(provision_store, settings)
    # The dev server registers them from its flags only when it creates its database: a kept one gets those a
    # newer jobstream added here.
    await register_search_attributes(settings)


async def register_search_attributes(settings: Settings, timeout_s: float = 120.0) -> None:
    """Register those of jobstream's search attributes that the namespace lacks.

    Retried: a fresh Temporal answers health checks before its namespace is visible to every service.
    """
    client = await Client.connect(**temporal_connect_options(settings))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            listed = await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace=client.namespace)
            )
            missing = {
                name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
                for name, kind in SEARCH_ATTRIBUTE_TYPES.items()
                if name not in listed.custom_attributes
            }
            if missing:
                await client.operator_service.add_search_attributes(
                    AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
                )
            return
        except RPCError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


async def provision_all(settings: Settings) -> None:
    """Everything a fresh stack of separate servers needs (docker-compose). No API key: a deployment's keys
    are made by its operator (`jobstream keys add TENANT`), never a development key anyone could know."""
    await provision(settings)
    # The SSE bridge and the JobService must sign and verify with one secret; with none configured, make the
    # shared file now rather than let two processes race to create it.
    signing_secret(settings)


def main() -> None:
    """`python -m devstack.provision`."""
    asyncio.run(provision_all(get_settings()))
    print("jobstream provisioned; add a tenant's API key with `jobstream keys add TENANT`", flush=True)


if __name__ == "__main__":
    main()
