"""API keys map to tenants through one JSON file: {"keys": {"<api key>": "<tenant>"}}."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from jobstream.settings import Settings

DEV_TENANT = "dev"


def keys_file(settings: Settings) -> Path:
    return settings.api_keys_file or settings.state_dir / "api-keys.json"


def load_keys(settings: Settings) -> dict[str, str]:
    try:
        data = json.loads(keys_file(settings).read_text())
    except FileNotFoundError:
        return {}
    keys = data.get("keys", {})
    if not isinstance(keys, dict):
        raise ValueError(f"{keys_file(settings)}: 'keys' must map API keys to tenant names")
    return {str(key): str(tenant) for key, tenant in keys.items()}


def ensure_dev_key(settings: Settings) -> str:
    """The development tenant's key, created on first start so the CLI and grpcurl have one to use."""
    keys = load_keys(settings)
    for key, tenant in keys.items():
        if tenant == DEV_TENANT:
            return key
    key = "js_dev_" + secrets.token_urlsafe(24)
    keys[key] = DEV_TENANT
    path = keys_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"keys": keys}, indent=2) + "\n")
    path.chmod(0o600)
    return key
