"""Who a call comes from: a bearer API key, looked up by its digest in the keys file (jobstream.keys_store),
names a tenant. A key is shown once, when it is made (`jobstream keys add TENANT`); the local stack keeps its
development key beside its state (STATE_DIR/dev-api-key), for the CLI and the live page."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from jobstream.keys_store import (
    DIGEST_PREFIX,
    TENANT_NAME,
    KeysFile,
    digest,
    load_keys,
    store_key,
    update,
)
from jobstream.settings import Settings

DEV_TENANT = "dev"


def key_id(key_digest: str) -> str:
    """A short public name of a key (in the stream tokens it signs for): the start of its digest."""
    return key_digest[len(DIGEST_PREFIX) :][:16]


def bearer_key(header: str) -> str:
    """The key of an `Authorization: Bearer <key>` header; "" for any other."""
    scheme, _, key = header.strip().partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def tenant_of_key(keys: dict[str, str], key: str) -> str | None:
    """The tenant of a presented key (None for an unknown one), found by its digest."""
    return keys.get(digest(key)) if key else None


@dataclass(frozen=True)
class Caller:
    """Who a call comes from: the tenant, the public id of the API key it presented, and the keys file as it
    was read to authenticate the call (the tenant's limits are read from it, not from a second read)."""

    tenant: str
    key_id: str
    keys_file: KeysFile


def caller_of(document: KeysFile, key: str) -> Caller | None:
    key_digest = digest(key)
    tenant = document.keys.get(key_digest) if key else None
    return Caller(tenant, key_id(key_digest), document) if tenant is not None else None


def live_key_ids(keys: dict[str, str]) -> dict[str, str]:
    """Key id -> tenant, of every key in the file: a stream token signed for a key lives only as long."""
    return {key_id(key_digest): tenant for key_digest, tenant in keys.items()}


def add_key(settings: Settings, tenant: str) -> str:
    """A new key for `tenant`: its digest goes into the keys file, the key itself is returned, once."""
    if not TENANT_NAME.fullmatch(tenant):
        raise ValueError(f"tenant name {tenant!r}: lowercase letters, digits and dashes only (at most 63)")
    key = f"js_{tenant}_" + secrets.token_urlsafe(24)
    store_key(settings, key, tenant)
    return key


def dev_key_file(settings: Settings) -> Path:
    return settings.state_dir / "dev-api-key"


def dev_key(settings: Settings) -> str | None:
    """The local stack's development key, if `jobstream up` has made one; never creates it."""
    try:
        return dev_key_file(settings).read_text().strip() or None
    except FileNotFoundError:
        return None


def ensure_dev_key(settings: Settings) -> str:
    """The local stack's development key (tenant "dev"), made on its first start. Only `jobstream up` (and
    what runs against the stack it started: tests, the benchmark) calls this; a deployment never has it."""
    update(settings, lambda document: None)  # a file from before keys were hashed: hashed now
    key = dev_key(settings)
    if key is not None and load_keys(settings).get(digest(key)) == DEV_TENANT:
        return key
    key = add_key(settings, DEV_TENANT)
    path = dev_key_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(key + "\n")
    return key
