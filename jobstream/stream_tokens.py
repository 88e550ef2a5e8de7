"""Job-scoped stream tokens: `EventSource` cannot send headers, so the SSE URL carries a signed token
that grants reading one job's events, for one tenant, until it expires (an hour by default; GetJob hands out a
fresh one) or the API key it was issued to is revoked (the `kid` claim names that key)."""

from __future__ import annotations

import functools
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from jobstream.settings import Settings

ALGORITHM = "HS256"
AUDIENCE = "jobstream.event_log"


class InvalidStreamToken(Exception):
    pass


@dataclass(frozen=True)
class StreamGrant:
    job_id: str
    tenant: str
    key_id: str  # of the API key the token was issued to (jobstream.auth.key_id)


REQUIRED = ["exp", "iat", "sub", "ten", "aud", "kid"]
# The JobService that issues a token and the bridge that checks it read different clocks.
CLOCK_SKEW_S = 30
# Tokens whose signature a process remembers having checked.
VERIFIED_TOKENS = 10_000
# HS256 wants a key at least as long as its hash (RFC 7518, 3.2): 32 bytes.
MIN_SECRET_BYTES = 32


class WeakSecret(ValueError):
    pass


def signing_secret(settings: Settings) -> str:
    """The configured secret, or one generated once into the state directory and shared by all processes;
    WeakSecret for one shorter than MIN_SECRET_BYTES."""
    secret = settings.stream_token_secret
    if not secret:
        path = settings.state_dir / "stream-token-secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written whole under another name and renamed: a process starting beside this one never reads a
            # half-written secret (it would sign with it, and every other process would refuse its tokens).
            draft = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
            draft.write_text(secrets.token_urlsafe(32))
            draft.chmod(0o600)
            try:
                os.link(draft, path)  # the first writer wins; a later one keeps the first's secret
            except FileExistsError:
                pass
            finally:
                draft.unlink()
        secret = path.read_text().strip()
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise WeakSecret(
            f"the stream-token secret is {len(secret.encode())} bytes; it must be at least {MIN_SECRET_BYTES} "
            "(JOBSTREAM_STREAM_TOKEN_SECRET, or unset for one generated into the state directory)"
        )
    return secret


class StreamTokens:
    def __init__(self, settings: Settings) -> None:
        self.secret = signing_secret(settings)
        self.ttl_s = settings.stream_token_ttl_s
        # Every viewer of a job, and every reconnect, brings the same token: its signature is checked once (the
        # check costs more than the rest of opening a stream), its expiry every time. A forged token raises, and
        # what raises is not kept.
        self._signed_claims = functools.lru_cache(maxsize=VERIFIED_TOKENS)(self._check_signature)

    def issue(self, job_id: str, tenant: str, key_id: str, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        claims = {
            "sub": job_id,
            "ten": tenant,
            "kid": key_id,
            "aud": AUDIENCE,
            "iat": issued,
            "exp": issued + self.ttl_s,
            # Every token its own, even two issued in one second for one job: a token's stream limit is its own.
            "jti": secrets.token_urlsafe(9),
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def _check_signature(self, token: str) -> dict[str, Any]:
        # A token without `exp` would never expire: every claim we issue is required. Expiry is verify's own
        # check, since the claims are kept beyond one call.
        claims: dict[str, Any] = jwt.decode(
            token,
            self.secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": REQUIRED, "verify_exp": False},
            leeway=CLOCK_SKEW_S,
        )
        return claims

    def verify(self, token: str, job_id: str, now: float | None = None) -> StreamGrant:
        """The grant for `job_id`; InvalidStreamToken if forged, expired or issued for another job."""
        try:
            claims = self._signed_claims(token)
        except jwt.PyJWTError as exc:
            raise InvalidStreamToken(str(exc)) from exc
        expires = claims["exp"]
        if not isinstance(expires, int) or expires + CLOCK_SKEW_S < (now if now is not None else time.time()):
            raise InvalidStreamToken("Signature has expired")
        if claims.get("sub") != job_id or not isinstance(claims.get("ten"), str):
            raise InvalidStreamToken("token was issued for another job")
        if not isinstance(claims.get("kid"), str):
            raise InvalidStreamToken("token names no API key")
        return StreamGrant(job_id=job_id, tenant=claims["ten"], key_id=claims["kid"])
