"""Per-tenant limits: the settings' defaults, over which the API keys file's `tenants` section sets a tenant's
own: {"keys": {...}, "tenants": {"acme": {"max_running_jobs": 20, "max_streams": 100}}}."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobstream.auth import KeysFileError, keys_file
from jobstream.settings import Settings


class TenantLimits(BaseModel):
    """What one tenant may hold at once; 0 means no limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_running_jobs: int = Field(ge=0)
    max_streams: int = Field(ge=0)
    max_streams_per_token: int = Field(ge=0)


def tenant_limits(settings: Settings, tenant: str) -> TenantLimits:
    defaults = {
        "max_running_jobs": settings.tenant_max_running_jobs,
        "max_streams": settings.tenant_max_streams,
        "max_streams_per_token": settings.stream_token_max_streams,
    }
    path = keys_file(settings)
    try:
        own = json.loads(path.read_text()).get("tenants", {}).get(tenant, {})
    except FileNotFoundError:
        own = {}
    except (ValueError, AttributeError) as exc:
        raise KeysFileError(f"{path}: 'tenants' must map tenant names to their limits") from exc
    try:
        return TenantLimits.model_validate({**defaults, **own})
    except (ValidationError, TypeError) as exc:
        raise KeysFileError(f"{path}: the limits of tenant {tenant!r} are not valid: {exc}") from exc
