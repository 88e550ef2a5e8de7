"""The tenants' webhook endpoints, in one file beside the API keys (`webhooks.json` in the state directory,
private): `{"endpoints": {"we_<id>": {"tenant", "url", "secret"}}}`. A secret is Standard Webhooks' `whsec_`
followed by base64 of 24 random bytes; it is shown once, when the endpoint is added.

A webhook URL is the classic server-side request forgery hole: only `https` URLs whose host is not a loopback,
private, link-local or otherwise reserved address are taken (checked when added, and again on every delivery
against what the name resolves to then), unless `JOBSTREAM_WEBHOOKS_ALLOW_PRIVATE` is on (the local stack)."""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
import socket
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from jobstream.private_file import locked, write_private
from jobstream.settings import Settings


class Endpoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: str
    url: str
    secret: str


class EndpointsFile(BaseModel):
    endpoints: dict[str, Endpoint] = {}


class UnsafeUrl(ValueError):
    pass


def endpoints_path(settings: Settings) -> Path:
    return settings.state_dir / "webhooks.json"


def read_endpoints(settings: Settings) -> EndpointsFile:
    try:
        return EndpointsFile.model_validate_json(endpoints_path(settings).read_text())
    except FileNotFoundError:
        return EndpointsFile()


def endpoints_of(settings: Settings, tenant: str) -> dict[str, Endpoint]:
    return {eid: e for eid, e in read_endpoints(settings).endpoints.items() if e.tenant == tenant}


NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _forbidden(address: str) -> bool:
    """Not a public address, or an IPv6 one that carries an IPv4 address (mapped, 6to4, Teredo, NAT64) which is
    not public: those reach the IPv4 network behind a translator."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if not ip.is_global or ip.is_multicast:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None]
        embedded += [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) for net in NAT64 if ip in net]
        return any(v4 is not None and (not v4.is_global or v4.is_multicast) for v4 in embedded)
    return False


def check_url(url: str, allow_private: bool) -> str | None:
    """UnsafeUrl unless `url` may be delivered to (see the module's docstring). Returns the checked address to
    connect to, so that a second lookup cannot answer another one (DNS rebinding); None where private addresses
    are allowed (connect by name)."""
    if any(ord(c) < 0x21 or c == "\x7f" for c in url):  # urlsplit drops a tab that the HTTP client would not
        raise UnsafeUrl("a URL must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeUrl(f"{url[:200]!r} is not an http(s) URL")
    if allow_private:
        return None
    if parts.scheme != "https":
        raise UnsafeUrl("webhook URLs must be https")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UnsafeUrl(f"{parts.hostname} does not resolve: {exc}") from exc
    addresses = sorted({str(info[4][0]) for info in infos})
    if bad := [address for address in addresses if _forbidden(address)]:
        raise UnsafeUrl(f"{parts.hostname} resolves to {', '.join(bad)}: not a public address")
    return addresses[0]


def pinned(url: str, address: str) -> tuple[str, str]:
    """(the URL with its host replaced by `address`, the Host header the original names)."""
    parts = urlsplit(url)
    literal = f"[{address}]" if ":" in address else address
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{literal}{port}").geturl(), f"{parts.hostname}{port}"


def add_endpoint(settings: Settings, tenant: str, url: str) -> tuple[str, str]:
    """(endpoint id, secret) of a new endpoint for `tenant`."""
    check_url(url, settings.webhooks_allow_private)
    endpoint_id = "we_" + secrets.token_hex(8)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    path = endpoints_path(settings)
    with locked(path):
        document = read_endpoints(settings)
        document.endpoints[endpoint_id] = Endpoint(tenant=tenant, url=url, secret=secret)
        write_private(path, json.loads(document.model_dump_json()))
    return endpoint_id, secret


def remove_endpoint(settings: Settings, endpoint_id: str) -> bool:
    path = endpoints_path(settings)
    with locked(path):
        document = read_endpoints(settings)
        found = document.endpoints.pop(endpoint_id, None) is not None
        write_private(path, json.loads(document.model_dump_json()))
    return found
