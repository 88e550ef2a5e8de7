"""API keys map to tenants through one JSON file, which holds each key's SHA-256 digest, never the key:
{"keys": {"sha256:<hex digest of the key>": "<tenant>"}}. A key is shown once, when it is made
(`jobstream keys add TENANT`); the local stack keeps its development key beside its state
(STATE_DIR/dev-api-key), for the CLI and the live page.

An entry written by hand with the key itself still works (it is hashed as it is read), and is logged."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobstream.settings import Settings

DEV_TENANT = "dev"
TENANT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
log = logging.getLogger(__name__)
READ_ATTEMPTS = 5
READ_RETRY_S = 0.02
DIGEST_PREFIX = "sha256:"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_WARNED: set[str] = set()


def digest(key: str) -> str:
    """What the keys file stores of a key: the key itself cannot be recovered from it."""
    return DIGEST_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def key_id(key_digest: str) -> str:
    """A short public name of a key (in the stream tokens it signs for): the start of its digest."""
    return key_digest[len(DIGEST_PREFIX) :][:16]


def bearer_key(header: str) -> str:
    """The key of an `Authorization: Bearer <key>` header; "" for any other."""
    scheme, _, key = header.strip().partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def keys_file(settings: Settings) -> Path:
    return settings.api_keys_file or settings.state_dir / "api-keys.json"


class KeysFileError(ValueError):
    """The keys file cannot be read as keys (being rewritten in place by an editor, or broken)."""


@dataclass(frozen=True)
class KeysFile:
    """One read of the keys file: each key's digest -> its tenant, and the tenants' own limits as written
    (jobstream.tenants reads them)."""

    keys: dict[str, str]
    tenants: Any  # as written; jobstream.tenants says when it is not a mapping of tenants to limits


@dataclass(frozen=True)
class _Parsed:
    signature: tuple[int, int, int]  # the file's inode, size and modification time when it was parsed
    at: float  # time.monotonic() then
    document: KeysFile


# Per path: the last parse, answered again while the file looks unchanged (every RPC and every stream open asks).
_PARSED: dict[Path, _Parsed] = {}
# ...but for no longer than this: a file rewritten in place to the same size within one tick of a coarse clock
# looks unchanged.
REPARSE_S = 1.0


def read_keys_file(settings: Settings) -> KeysFile:
    path = keys_file(settings)
    try:
        status = path.stat()
    except FileNotFoundError:
        return KeysFile({}, {})
    signature = (status.st_ino, status.st_size, status.st_mtime_ns)
    parsed = _PARSED.get(path)
    now = time.monotonic()
    if parsed is not None and parsed.signature == signature and now - parsed.at < REPARSE_S:
        return parsed.document
    document = _parse_keys_file(path)
    _PARSED[path] = _Parsed(signature, now, document)
    return document


def _parse_keys_file(path: Path) -> KeysFile:
    for attempt in range(READ_ATTEMPTS):
        try:
            data = json.loads(path.read_text())
            break
        except FileNotFoundError:
            return KeysFile({}, {})
        except json.JSONDecodeError as exc:
            # Caught in the middle of a rewrite that was not atomic: the next read sees all of it.
            if attempt == READ_ATTEMPTS - 1:
                raise KeysFileError(f"{path} is not valid JSON: {exc}") from exc
            time.sleep(READ_RETRY_S)
    keys = data.get("keys", {}) if isinstance(data, dict) else None
    if not isinstance(keys, dict):
        raise KeysFileError(f"{path}: 'keys' must map API keys to tenant names")
    valid = {}
    for entry, tenant in keys.items():
        # A tenant name is a path segment of its objects (uploads/<tenant>/...): `acme/x` would share them.
        if not (isinstance(tenant, str) and TENANT_NAME.fullmatch(tenant)):
            log.error("%s: tenant name %r refused (lowercase letters, digits and dashes only)", path, tenant)
            continue
        if DIGEST.fullmatch(entry):
            valid[entry] = tenant
        else:
            key_digest = digest(str(entry))
            if key_digest not in _WARNED:  # read on every call: said once per process, not once per call
                _WARNED.add(key_digest)
                log.warning("%s: a key of tenant %r is stored in the clear; store its digest instead", path, tenant)
            valid[key_digest] = tenant
    return KeysFile(valid, data.get("tenants", {}))


def load_keys(settings: Settings) -> dict[str, str]:
    """Each key's digest -> its tenant."""
    return read_keys_file(settings).keys


def _entries(path: Path) -> dict[str, str]:
    """The file's entries as written ({} when there is no file)."""
    try:
        return dict(json.loads(path.read_text()).get("keys", {}))
    except FileNotFoundError:
        return {}


def _hashed(entries: dict[str, str]) -> dict[str, str]:
    """The entries as digests (one written in the clear by hand is hashed on the way)."""
    return {(entry if DIGEST.fullmatch(entry) else digest(entry)): tenant for entry, tenant in entries.items()}


def tenant_of(keys: dict[str, str], key: str) -> str | None:
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


def write_keys(path: Path, keys: dict[str, str], tenants: dict[str, Any] | None = None) -> None:
    """Atomically, readable by the owner only from the start: a reader never sees half a file, nobody else
    ever sees the keys. The file's `tenants` section (their limits) is kept unless `tenants` replaces it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {"keys": keys}
    if tenants is None:
        try:
            tenants = json.loads(path.read_text()).get("tenants")
        except (OSError, ValueError, AttributeError):
            tenants = None
    if tenants:
        document["tenants"] = tenants
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(json.dumps(document, indent=2) + "\n")
    os.replace(tmp, path)


def dev_key_file(settings: Settings) -> Path:
    return settings.state_dir / "dev-api-key"


def dev_key(settings: Settings) -> str | None:
    """The local stack's development key, if `jobstream up` has made one; never creates it."""
    try:
        return dev_key_file(settings).read_text().strip() or None
    except FileNotFoundError:
        return None


def add_key(settings: Settings, tenant: str) -> str:
    """A new key for `tenant`: its digest goes into the keys file, the key itself is returned, once."""
    if not TENANT_NAME.fullmatch(tenant):
        raise ValueError(f"tenant name {tenant!r}: lowercase letters, digits and dashes only (at most 63)")
    key = f"js_{tenant}_" + secrets.token_urlsafe(24)
    path = keys_file(settings)
    write_keys(path, {**_hashed(_entries(path)), digest(key): tenant})
    return key


def remove_key(settings: Settings, key: str) -> None:
    path = keys_file(settings)
    write_keys(path, {entry: tenant for entry, tenant in _hashed(_entries(path)).items() if entry != digest(key)})


def ensure_dev_key(settings: Settings) -> str:
    """The local stack's development key (tenant "dev"), made on its first start. Only `jobstream up` (and
    what runs against the stack it started: tests, the benchmark) calls this; a deployment never has it."""
    path = keys_file(settings)
    entries = _entries(path)
    if _hashed(entries) != entries:
        write_keys(path, _hashed(entries))  # a file from before keys were hashed: hashed now, once
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
