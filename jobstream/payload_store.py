"""The claim-check store: MinIO holds every payload too large for Temporal; references travel instead.

Two doors use it: the JobService and activities store inputs and results explicitly (content-addressed
keys, presigned URLs for clients), and Temporal's own external-storage hook offloads any other payload over
the threshold through `data_converter()`, so nothing large ever reaches workflow history.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.datatypes import PostPolicy
from minio.error import S3Error
from temporalio.contrib.aws.s3driver import S3StorageDriver, S3StorageDriverClient
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, ExternalStorage

from jobstream.settings import Settings

# Objects written for jobs expire with the jobs' retention; Temporal keeps closed workflows as long.
RETENTION_DAYS = 7
# Uploads are read (and copied where the job reads them) at submit: a day is ample, and bounds what they hold.
UPLOADS_RETENTION_DAYS = 1
UPLOADS = "uploads"
REF_SCHEME = "minio://"
# A result URL is good for an hour; one with less than the margin left is signed again where it is handed out.
RESULT_URL_TTL = timedelta(hours=1)
RESULT_URL_MARGIN = timedelta(minutes=10)


def minio_client(settings: Settings, access_key: str = "", secret_key: str = "") -> Minio:
    """A client as the services' user (limited to the bucket), or as the user whose keys are given."""
    return Minio(
        settings.minio_endpoint,
        access_key=access_key or settings.minio_access_key,
        secret_key=secret_key or settings.minio_secret_key,
        secure=settings.minio_secure,
        region=settings.minio_region,
        http_client=minio_http_client(settings),
    )


def minio_http_client(settings: Settings) -> urllib3.PoolManager | None:
    """With a private CA's bundle, a pool that verifies MinIO's certificate with it; None: the minio client's
    own, which verifies with the system's (certifi's) CAs."""
    ca = settings.minio_ca_file
    return urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(ca)) if ca else None


def url_expiry(url: str) -> datetime | None:
    """When a presigned (AWS signature V4) URL expires, from its X-Amz-Date and X-Amz-Expires; None for any
    other URL."""
    query = parse_qs(urlsplit(url).query)
    try:
        signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return signed + timedelta(seconds=int(query["X-Amz-Expires"][0]))
    except (KeyError, IndexError, ValueError):
        return None


@dataclasses.dataclass(frozen=True)
class StoredObject:
    size: int
    etag: str


class TooLarge(ValueError):
    """An object is larger than the reader accepts."""


class Changed(Exception):
    """An object changed (or went away) since it was checked."""


class PayloadStore:
    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.minio_bucket
        self.client = minio_client(settings)
        self.base_url = f"{'https' if settings.minio_secure else 'http'}://{settings.minio_endpoint}"

    def ref(self, key: str) -> str:
        return f"{REF_SCHEME}{self.bucket}/{key}"

    def key_of(self, ref: str) -> str:
        """The object key of a reference this store issued; ValueError for anything else."""
        prefix = f"{REF_SCHEME}{self.bucket}/"
        if not ref.startswith(prefix) or len(ref) == len(prefix) or ".." in ref:
            raise ValueError(f"not a reference to this store: {ref[:80]!r}")
        return ref[len(prefix) :]

    async def put(self, prefix: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Store under a content-addressed key (same bytes, same key) and return the reference."""
        key = f"{prefix}/sha256/{hashlib.sha256(data).hexdigest()}"
        await asyncio.to_thread(self.client.put_object, self.bucket, key, io.BytesIO(data), len(data), content_type)
        return self.ref(key)

    async def get(self, ref: str, limit: int | None = None) -> bytes:
        """The object's bytes; TooLarge past `limit` bytes, read no further than one byte beyond it."""
        return await asyncio.to_thread(_read_object, self.client, self.bucket, self.key_of(ref), limit)

    async def stat(self, ref: str) -> StoredObject | None:
        """Size and ETag of the referenced object, or None when it does not exist."""
        key = self.key_of(ref)
        try:
            stat = await asyncio.to_thread(self.client.stat_object, self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return None
            raise
        return StoredObject(stat.size or 0, stat.etag or "")

    async def pin(self, ref: str, etag: str, prefix: str) -> str:
        """A copy, under `prefix` (which no upload URL can write to), of the object as it was when its ETag was
        `etag`; Changed when it has changed since. What was checked is then what is processed."""
        target = f"{prefix}/{uuid.uuid4().hex}"
        source = CopySource(self.bucket, self.key_of(ref), match_etag=etag)
        try:
            await asyncio.to_thread(self.client.copy_object, self.bucket, target, source)
        except S3Error as exc:
            if exc.code in ("PreconditionFailed", "NoSuchKey", "NoSuchObject"):
                raise Changed(ref) from exc
            raise
        return self.ref(target)

    async def count(self, prefix: str, up_to: int) -> int:
        """How many objects are under `prefix`, counted no further than `up_to`."""

        def counted() -> int:
            listed = self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
            return sum(1 for _ in itertools.islice(listed, up_to))

        return await asyncio.to_thread(counted)

    async def presigned_get(self, ref: str, expires: timedelta = RESULT_URL_TTL) -> str:
        return await asyncio.to_thread(self.client.presigned_get_object, self.bucket, self.key_of(ref), expires)

    async def fresh_url(self, url: str, now: datetime | None = None) -> str:
        """`url`, or, when it is one of this store's presigned URLs with less than RESULT_URL_MARGIN of life
        left, a new one for the same object: an event replayed days after the job still links its result."""
        expires = url_expiry(url)
        if expires is None or expires - (now or datetime.now(UTC)) > RESULT_URL_MARGIN:
            return url
        bucket, _, key = urlsplit(url).path.lstrip("/").partition("/")
        if bucket != self.bucket or not key:
            return url
        return await self.presigned_get(self.ref(unquote(key)))

    async def presigned_post(self, key: str, expires: timedelta, max_bytes: int) -> tuple[str, dict[str, str]]:
        """Where and with which form fields a client POSTs one object of 1 to `max_bytes` bytes to `key`."""
        policy = PostPolicy(self.bucket, datetime.now(UTC) + expires)
        policy.add_equals_condition("key", key)
        policy.add_content_length_range_condition(1, max_bytes)
        fields = await asyncio.to_thread(self.client.presigned_post_policy, policy)
        return f"{self.base_url}/{self.bucket}", {"key": key, **fields}


class MinioDriverClient(S3StorageDriverClient):
    """Temporal's S3 storage driver, spoken through the `minio` client."""

    def __init__(self, client: Minio) -> None:
        self.client = client

    async def put_object(self, *, bucket: str, key: str, data: bytes) -> None:
        await asyncio.to_thread(self.client.put_object, bucket, key, io.BytesIO(data), len(data))

    async def object_exists(self, *, bucket: str, key: str) -> bool:
        try:
            await asyncio.to_thread(self.client.stat_object, bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise
        return True

    async def get_object(self, *, bucket: str, key: str) -> bytes:
        return await asyncio.to_thread(_read_object, self.client, bucket, key)


def _read_object(client: Minio, bucket: str, key: str, limit: int | None = None) -> bytes:
    response = client.get_object(bucket, key)
    try:
        if limit is None:
            return bytes(response.read())
        data = bytes(response.read(limit + 1))
        if len(data) > limit:
            raise TooLarge(f"the object is over {limit} bytes")
        return data
    finally:
        response.close()
        response.release_conn()


def data_converter(settings: Settings) -> DataConverter:
    """The converter every Temporal client and worker of jobstream uses: large payloads go to MinIO."""
    driver = S3StorageDriver(client=MinioDriverClient(minio_client(settings)), bucket=settings.minio_bucket)
    storage = ExternalStorage(drivers=[driver], payload_size_threshold=settings.payload_threshold_bytes)
    return dataclasses.replace(pydantic_data_converter, external_storage=storage)
