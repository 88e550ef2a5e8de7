"""A tenant's limits: the settings' defaults, over which the keys file's `tenants` section sets its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobstream.keys_store import KeysFileError, keys_file
from jobstream.settings import Settings
from jobstream.tenants import TenantLimits, tenant_limits


def settings(tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path,
        tenant_max_running_jobs=5,
        tenant_max_streams=50,
        stream_token_max_streams=4,
        tenant_max_calls=9,
        tenant_max_uploads=3,
        tenant_max_input_bytes_in_flight=1000,
    )


def test_the_defaults_come_from_the_settings(tmp_path: Path) -> None:
    assert tenant_limits(settings(tmp_path), "acme") == TenantLimits(
        max_running_jobs=5,
        max_streams=50,
        max_streams_per_token=4,
        max_calls=9,
        max_uploads=3,
        max_input_bytes_in_flight=1000,
    )


def test_a_tenants_own_limits_win(tmp_path: Path) -> None:
    keys_file(settings(tmp_path)).write_text(json.dumps({"keys": {}, "tenants": {"acme": {"max_running_jobs": 1}}}))
    assert tenant_limits(settings(tmp_path), "acme").max_running_jobs == 1
    assert tenant_limits(settings(tmp_path), "acme").max_streams == 50
    assert tenant_limits(settings(tmp_path), "other").max_running_jobs == 5


@pytest.mark.parametrize(
    "tenants",
    [
        {"acme": {"max_running_jobs": -1}},
        {"acme": {"max_jobs": 1}},
        {"acme": {"fairness_weight": 0}},
        {"acme": 3},
        ["acme"],
    ],
)
def test_broken_limits_are_a_keys_file_error(tmp_path: Path, tenants: object) -> None:
    keys_file(settings(tmp_path)).write_text(json.dumps({"keys": {}, "tenants": tenants}))
    with pytest.raises(KeysFileError):
        tenant_limits(settings(tmp_path), "acme")


def test_each_replica_enforces_its_share_of_the_limits_it_counts_alone(tmp_path: Path) -> None:
    """Calls and streams are counted in each process: three replicas hold 50 streams as 17 each (together
    fewer than the limit plus three), 0 stays no limit, and the running-jobs quotas are shared, not divided."""
    shared = settings(tmp_path).model_copy(update={"replicas": 3, "tenant_max_calls": 0})
    limits = tenant_limits(shared, "acme")
    assert (limits.max_streams, limits.max_streams_per_token, limits.max_calls) == (17, 2, 0)
    assert (limits.max_running_jobs, limits.max_uploads, limits.max_input_bytes_in_flight) == (5, 3, 1000)
