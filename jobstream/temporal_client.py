"""The one way jobstream connects to Temporal: pydantic payloads, large ones claim-checked into MinIO."""

from __future__ import annotations

from temporalio.client import Client

from jobstream.payload_store import data_converter
from jobstream.settings import Settings

WORKFLOW_QUEUE = "jobstream-workflows"


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
    )
