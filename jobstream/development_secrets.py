"""Secrets anyone can read in this repository: fine on loopback, refused anywhere else."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobstream.settings import Settings

DEVELOPMENT_SECRETS = frozenset(
    {"jobstream-dev-secret", "jobstream-dev-app-secret", "jobstream-dev-stream-token-secret"}
)
# The settings that hold a secret someone could use: sign stream tokens, read every tenant's objects.
SECRET_SETTINGS = ("stream_token_secret", "minio_secret_key", "minio_root_password")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def refuse_development_secrets(settings: Settings) -> None:
    """Exit with a clear message when this process would serve beyond loopback with a secret everyone knows
    (the settings' defaults, or docker-compose's old fallbacks): with those, anyone could sign stream tokens
    or read every tenant's objects."""
    if is_loopback(settings.bind_address):
        return
    known = [f"JOBSTREAM_{name.upper()}" for name in SECRET_SETTINGS if getattr(settings, name) in DEVELOPMENT_SECRETS]
    if known:
        raise SystemExit(
            f"refusing to serve on {settings.bind_address} with the development value of {', '.join(known)}: "
            "set a secret of your own (the local stack's defaults are for 127.0.0.1 only)"
        )
