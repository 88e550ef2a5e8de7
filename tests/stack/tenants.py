"""Tenants made for one test: a brand-new tenant's key (removed again afterwards), and its own limits."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

from jobstream.keys_store import KeysDocument, remove_key, store_key, update
from jobstream.settings import Settings


def add_api_key(settings: Settings, tenant: str) -> str:
    """Add a new key for `tenant` (any name, even one the service refuses) to the api-keys file, keeping every
    existing key; returns the key. Stored as its digest, as `jobstream keys add` stores one."""
    key = "js_test_" + secrets.token_urlsafe(18)
    store_key(settings, key, tenant)
    return key


@contextlib.contextmanager
def tenant_with_limits(settings: Settings, prefix: str, **limits: int) -> Iterator[tuple[str, str]]:
    """(tenant, key) of a brand-new tenant whose own limits (the keys file's `tenants` section) are `limits`."""
    with tenant_key(settings, prefix) as (tenant, key):

        def limit(document: KeysDocument) -> None:
            document.tenants[tenant] = limits

        def unlimit(document: KeysDocument) -> None:
            document.tenants.pop(tenant, None)

        update(settings, limit)
        try:
            yield tenant, key
        finally:
            update(settings, unlimit)


@contextlib.contextmanager
def tenant_key(settings: Settings, prefix: str = "test") -> Iterator[tuple[str, str]]:
    """(tenant, key) of a brand-new tenant with no jobs; its key is removed again afterwards."""
    tenant = f"{prefix}-{secrets.token_hex(6)}"
    key = add_api_key(settings, tenant)
    try:
        yield tenant, key
    finally:
        remove_key(settings, key)
