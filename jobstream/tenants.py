"""Per-tenant limits: the settings' defaults, over which the API keys file's `tenants` section sets a tenant's
own: {"keys": {...}, "tenants": {"acme": {"max_running_jobs": 20, "max_streams": 100}}}."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobstream.keys_store import KeysFile, KeysFileError, read_keys_file
from jobstream.settings import Settings

# Counted in each process's memory, so divided among replicas; 0 (no limit) stays 0.
PER_PROCESS_LIMITS = ("max_streams", "max_streams_per_token", "max_calls")


class TenantLimits(BaseModel):
    """What one tenant may hold at once; 0 means no limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_running_jobs: int = Field(ge=0)
    max_streams: int = Field(ge=0)
    max_streams_per_token: int = Field(ge=0)
    max_calls: int = Field(ge=0)
    max_uploads: int = Field(ge=0)
    max_input_bytes_in_flight: int = Field(ge=0)
    # The tenant's share of a busy task queue against other tenants' (Temporal's fairness weight): with a
    # backlog, a tenant of weight 2 is dispatched twice as often as one of weight 1.
    fairness_weight: float = Field(1.0, gt=0, le=1000)

    def replica_share(self, replicas: int) -> TenantLimits:
        """What one of `replicas` processes enforces of the limits it counts alone (calls in flight, open
        streams): the limit divided among them, rounded up, so that together they admit fewer than the limit
        plus `replicas`. The running-jobs quotas are shared through Temporal's visibility instead."""
        if replicas == 1:
            return self
        shares = {name: math.ceil(getattr(self, name) / replicas) for name in PER_PROCESS_LIMITS}
        return self.model_copy(update=shares)


def tenant_limits(settings: Settings, tenant: str) -> TenantLimits:
    return limits_in(read_keys_file(settings), settings, tenant)


def limits_in(document: KeysFile, settings: Settings, tenant: str) -> TenantLimits:
    """`tenant`'s limits in one read of the keys file (KeysFileError for ones that are not valid), as this
    process, one of the settings' `replicas`, enforces them."""
    defaults = {
        "max_running_jobs": settings.tenant_max_running_jobs,
        "max_streams": settings.tenant_max_streams,
        "max_streams_per_token": settings.stream_token_max_streams,
        "max_calls": settings.tenant_max_calls,
        "max_uploads": settings.tenant_max_uploads,
        "max_input_bytes_in_flight": settings.tenant_max_input_bytes_in_flight,
    }
    if not isinstance(document.tenants, dict):
        raise KeysFileError("the keys file's 'tenants' must map tenant names to their limits")
    own = document.tenants.get(tenant, {})
    try:
        limits = TenantLimits.model_validate({**defaults, **own})
    except (ValidationError, TypeError) as exc:
        raise KeysFileError(f"the limits of tenant {tenant!r} in the keys file are not valid: {exc}") from exc
    return limits.replica_share(settings.replicas)
