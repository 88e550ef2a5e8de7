"""Uploads (CreateUpload): a presigned POST into the tenant's upload area, and the checks a job's `input_ref` passes
before the job reads a pinned copy of it. Refusals name the field (errors.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from jobstream.payload_store import UPLOADS, Changed, PayloadStore, StoredObject
from jobstream.pipelines import Pipelines
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from services.job_service import validation
from services.job_service.errors import ChangedUnderfoot, InvalidField, TooLarge

DEFAULT_TTL = timedelta(minutes=15)


def upload_ttl(ttl: Duration | None) -> timedelta:
    """How long an upload URL lives: as asked, 1 second to 7 days; unset or zero means 15 minutes."""
    out_of_range = InvalidField("ttl", "must be between 1 second and 7 days (0 means 15 minutes)")
    try:
        asked = ttl.ToTimedelta() if ttl is not None else timedelta(0)
    except (OverflowError, ValueError):  # seconds beyond what a timedelta (or a Duration) can hold
        raise out_of_range from None
    asked = asked or DEFAULT_TTL
    if not timedelta(seconds=1) <= asked <= timedelta(days=7):
        raise out_of_range
    return asked


class Uploads:
    def __init__(self, store: PayloadStore, settings: Settings, pipelines: Pipelines) -> None:
        self.store = store
        self.settings = settings
        self.pipelines = pipelines

    async def held(self, tenant: str, limit: int) -> int:
        """How many uploads the tenant holds, counted up to `limit`."""
        return await self.store.count(f"{UPLOADS}/{tenant}/", limit)

    async def grant(self, tenant: str, ttl: timedelta) -> api.CreateUploadResponse:
        key = f"{UPLOADS}/{tenant}/{uuid.uuid4().hex}"
        expire = Timestamp()
        expire.FromDatetime(datetime.now(UTC) + ttl)
        url, fields = await self.store.presigned_post(key, ttl, self.settings.max_input_bytes)
        return api.CreateUploadResponse(
            upload_url=url, upload_fields=fields, input_ref=self.store.ref(key), expire_time=expire
        )

    async def checked(self, tenant: str, valid: validation.ValidSubmit) -> StoredObject:
        """The tenant's upload that `input_ref` names, as it is now: uploaded, not empty, within the limits."""
        ref = valid.input_ref or ""
        try:
            key = self.store.key_of(ref)
        except ValueError as exc:
            raise InvalidField("input_ref", "is not a reference returned by CreateUpload") from exc
        if not key.startswith(f"{UPLOADS}/{tenant}/"):
            raise InvalidField("input_ref", "is not a reference returned by CreateUpload")
        stored = await self.store.stat(ref)
        if stored is None:
            raise InvalidField("input_ref", "nothing has been uploaded to this reference yet")
        if stored.size > self.settings.max_input_bytes:
            raise TooLarge(
                "input_ref", f"the upload is {stored.size} bytes; the maximum is {self.settings.max_input_bytes}"
            )
        if stored.size == 0:
            raise InvalidField("input_ref", "the uploaded object is empty")
        validation.check_model_input("input_ref", stored.size, valid.pipeline, self.pipelines)
        return stored

    async def pinned(self, tenant: str, ref: str, stored: StoredObject) -> str:
        """The job reads a copy of exactly what was checked: an upload to the same URL after this changes nothing."""
        try:
            return await self.store.pin(ref, stored.etag, f"inputs/{tenant}/uploads")
        except Changed as exc:
            raise ChangedUnderfoot("input_ref", "the upload changed while it was checked; submit again") from exc
