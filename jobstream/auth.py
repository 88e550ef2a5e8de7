"""API keys map to tenants through one JSON file: {"keys": {"<api key>": "<tenant>"}}."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from pathlib import Path

from jobstream.settings import Settings

DEV_TENANT = "dev"
TENANT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
log = logging.getLogger(__name__)
READ_ATTEMPTS = 5
READ_RETRY_S = 0.02


def bearer_key(header: str) -> str:
    """The key of an `Authorization: Bearer <key>` header; "" for any other."""
    scheme, _, key = header.strip().partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def keys_file(settings: Settings) -> Path:
    return settings.api_keys_file or settings.state_dir / "api-keys.json"


class KeysFileError(ValueError):
    """The keys file cannot be read as keys (being rewritten in place by an editor, or broken)."""


def load_keys(settings: Settings) -> dict[str, str]:
    path = keys_file(settings)
    for attempt in range(READ_ATTEMPTS):
        try:
            data = json.loads(path.read_text())
            break
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            # Caught in the middle of a rewrite that was not atomic: the next read sees all of it.
            if attempt == READ_ATTEMPTS - 1:
                raise KeysFileError(f"{path} is not valid JSON: {exc}") from exc
            time.sleep(READ_RETRY_S)
    keys = data.get("keys", {}) if isinstance(data, dict) else None
    if not isinstance(keys, dict):
        raise KeysFileError(f"{path}: 'keys' must map API keys to tenant names")
    valid = {}
    for key, tenant in keys.items():
        # A tenant name is a path segment of its objects (uploads/<tenant>/...): `acme/x` would share them.
        if isinstance(tenant, str) and TENANT_NAME.fullmatch(tenant):
            valid[str(key)] = tenant
        else:
            log.error("%s: tenant name %r refused (lowercase letters, digits and dashes only)", path, tenant)
    return valid


def write_keys(path: Path, keys: dict[str, str]) -> None:
    """Atomically, readable by the owner only from the start: a reader never sees half a file, nobody else
    ever sees the keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(json.dumps({"keys": keys}, indent=2) + "\n")
    os.replace(tmp, path)


def dev_key(settings: Settings) -> str | None:
    """The development tenant's key if the local stack has made one; never creates it."""
    return next((key for key, tenant in load_keys(settings).items() if tenant == DEV_TENANT), None)


def ensure_dev_key(settings: Settings) -> str:
    """The development tenant's key, created on first start so the CLI and grpcurl have one to use."""
    keys = load_keys(settings)
    for key, tenant in keys.items():
        if tenant == DEV_TENANT:
            return key
    key = "js_dev_" + secrets.token_urlsafe(24)
    keys[key] = DEV_TENANT
    write_keys(keys_file(settings), keys)
    return key
