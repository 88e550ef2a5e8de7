"""The API keys file, the one place it is read and written: {"keys": {"sha256:<hex>": "<tenant>"},
"tenants": {"<tenant>": {<limits>}}}. It holds each key's SHA-256 digest, never the key.

Reading is on every RPC and every stream open, so a read answers from the last parse while the file's inode,
size and modification time are unchanged, never sleeps (it runs on the event loop), and while the file cannot be
parsed (an editor rewriting it in place) answers the last good parse. Writing (`update`) holds an exclusive
lock on a sibling lock file for the whole read-modify-write, and replaces the file atomically, private from
the start: two `jobstream keys add` at once both land, and no reader ever sees half a file."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobstream.private_file import locked, write_private
from jobstream.settings import Settings

TENANT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
DIGEST_PREFIX = "sha256:"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# A file rewritten in place to the same size within one tick of a coarse clock looks unchanged: parse it again
# after this long whatever it looks like.
REPARSE_S = 1.0
log = logging.getLogger(__name__)
_WARNED: set[Path] = set()


def digest(key: str) -> str:
    """What the keys file stores of a key: the key itself cannot be recovered from it."""
    return DIGEST_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def keys_file(settings: Settings) -> Path:
    return settings.api_keys_file or settings.state_dir / "api-keys.json"


class KeysFileError(ValueError):
    """The keys file cannot be read as keys (broken, or being rewritten in place by an editor)."""


@dataclass(frozen=True)
class KeysFile:
    """One read of the keys file: each key's digest -> its tenant (only the tenant names the service accepts),
    and the tenants' own limits as written (jobstream.tenants validates them, naming what is wrong)."""

    keys: dict[str, str]
    tenants: Any = field(default_factory=dict)


@dataclass
class KeysDocument:
    """The file as written, for a writer: every entry (hashed, whatever its tenant name) and the tenants."""

    keys: dict[str, str] = field(default_factory=dict)
    tenants: dict[str, Any] = field(default_factory=dict)


def _decode(path: Path, text: str) -> KeysDocument:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeysFileError(f"{path} is not valid JSON: {exc}") from exc
    keys = data.get("keys", {}) if isinstance(data, dict) else None
    if not isinstance(keys, dict):
        raise KeysFileError(f"{path}: 'keys' must map API keys to tenant names")
    in_clear = [entry for entry in keys if not DIGEST.fullmatch(entry)]
    if in_clear and path not in _WARNED:  # parsed again on every change: said once per process
        _WARNED.add(path)
        log.warning("%s: %d key(s) stored in the clear (hashed as read); store their digests", path, len(in_clear))
    hashed = {entry if DIGEST.fullmatch(entry) else digest(entry): tenant for entry, tenant in keys.items()}
    return KeysDocument(hashed, data.get("tenants", {}))


def _accepted(path: Path, document: KeysDocument) -> KeysFile:
    keys = {}
    for entry, tenant in document.keys.items():
        # A tenant name is a path segment of its objects (uploads/<tenant>/...): `acme/x` would share them.
        if isinstance(tenant, str) and TENANT_NAME.fullmatch(tenant):
            keys[entry] = tenant
        else:
            log.error("%s: tenant name %r refused (lowercase letters, digits and dashes only)", path, tenant)
    return KeysFile(keys, document.tenants)


@dataclass(frozen=True)
class _Parsed:
    signature: tuple[int, int, int]  # the file's inode, size and modification time when it was read
    at: float  # time.monotonic() then
    document: KeysFile


# Per path: the last good parse, answered again while the file looks unchanged (and while it cannot be parsed).
_PARSED: dict[Path, _Parsed] = {}


def read_keys_file(settings: Settings) -> KeysFile:
    """The keys file as the services read it ({} when there is none). KeysFileError when it cannot be parsed
    and no earlier read of it could."""
    path = keys_file(settings)
    try:
        status = path.stat()
    except FileNotFoundError:
        return KeysFile({})
    signature = (status.st_ino, status.st_size, status.st_mtime_ns)
    parsed = _PARSED.get(path)
    now = time.monotonic()
    if parsed is not None and parsed.signature == signature and now - parsed.at < REPARSE_S:
        return parsed.document
    try:
        document = _accepted(path, _decode(path, path.read_text()))
    except FileNotFoundError:
        return KeysFile({})
    except KeysFileError:
        # Caught in the middle of a rewrite that was not atomic, or broken: its next change is read again.
        if parsed is None:
            raise
        log.error("%s cannot be parsed; the keys read before stay in force until it can", path)
        _PARSED[path] = _Parsed(signature, now, parsed.document)  # said (and tried) again in REPARSE_S, not per call
        return parsed.document
    _PARSED[path] = _Parsed(signature, now, document)
    return document


def load_keys(settings: Settings) -> dict[str, str]:
    """Each key's digest -> its tenant."""
    return read_keys_file(settings).keys


def _write(path: Path, document: KeysDocument) -> None:
    data: dict[str, Any] = {"keys": document.keys}
    if document.tenants:
        data["tenants"] = document.tenants
    write_private(path, data)


def update(settings: Settings, change: Callable[[KeysDocument], None]) -> None:
    """Read the file, let `change` edit the document in place, write it back (keys stored in the clear by hand
    as their digests now): under the lock, atomically. A file that cannot be parsed is left as it is
    (KeysFileError)."""
    path = keys_file(settings)
    with locked(path):
        try:
            document = _decode(path, path.read_text())
        except FileNotFoundError:
            document = KeysDocument()
        change(document)
        _write(path, document)


def store_key(settings: Settings, key: str, tenant: str) -> None:
    """Keep `key`'s digest for `tenant` (whatever the name: readers refuse the names they do not accept)."""

    def add(document: KeysDocument) -> None:
        document.keys[digest(key)] = tenant

    update(settings, add)


def remove_key(settings: Settings, key: str) -> None:
    def remove(document: KeysDocument) -> None:
        document.keys.pop(digest(key), None)

    update(settings, remove)
