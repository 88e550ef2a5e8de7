"""jobstream/stream_tokens.py: a token grants one job's events to one tenant until it expires, nothing else."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import jwt
import pytest

from jobstream.settings import Settings
from jobstream.stream_tokens import (
    ALGORITHM,
    AUDIENCE,
    CLOCK_SKEW_S,
    InvalidStreamToken,
    StreamGrant,
    StreamTokens,
    WeakSecret,
)

SECRET = "unit-test-secret-" + "x" * 32
JOB = "job_" + "a" * 26
OTHER_JOB = "job_" + "b" * 26


KID = "0123456789abcdef"


def tokens(tmp_path: Path, secret: str = SECRET, ttl_s: int = 3600) -> StreamTokens:
    return StreamTokens(Settings(stream_token_secret=secret, stream_token_ttl_s=ttl_s, state_dir=tmp_path))


def test_issue_then_verify(tmp_path: Path) -> None:
    issuer = tokens(tmp_path)
    token = issuer.issue(JOB, "acme", KID)
    assert issuer.verify(token, JOB) == StreamGrant(job_id=JOB, tenant="acme", key_id=KID)
    claims = jwt.decode(token, SECRET, algorithms=[ALGORITHM], audience=AUDIENCE)
    assert claims["exp"] - claims["iat"] == 3600


def test_forged_signature(tmp_path: Path) -> None:
    forged = tokens(tmp_path, secret="another-secret-" + "y" * 32).issue(JOB, "acme", KID)
    with pytest.raises(InvalidStreamToken, match="Signature verification failed"):
        tokens(tmp_path).verify(forged, JOB)


def test_tampered_claims(tmp_path: Path) -> None:
    header, _, signature = tokens(tmp_path).issue(JOB, "acme", KID).split(".")
    now = int(time.time())
    evil = {"sub": JOB, "ten": "evil", "aud": AUDIENCE, "iat": now, "exp": now + 60}
    claims = jwt.utils.base64url_encode(json.dumps(evil).encode()).decode()
    with pytest.raises(InvalidStreamToken):
        tokens(tmp_path).verify(f"{header}.{claims}.{signature}", JOB)


def test_token_of_another_job(tmp_path: Path) -> None:
    issuer = tokens(tmp_path)
    with pytest.raises(InvalidStreamToken, match="another job"):
        issuer.verify(issuer.issue(OTHER_JOB, "acme", KID), JOB)


def test_expired(tmp_path: Path) -> None:
    issuer = tokens(tmp_path, ttl_s=60)
    with pytest.raises(InvalidStreamToken, match="expired"):
        issuer.verify(issuer.issue(JOB, "acme", KID, now=time.time() - 61 - CLOCK_SKEW_S), JOB)
    # Just inside its lifetime it still works.
    assert issuer.verify(issuer.issue(JOB, "acme", KID, now=time.time() - 50), JOB).tenant == "acme"


def test_a_token_checked_once_still_expires_and_still_names_one_job(tmp_path: Path) -> None:
    """Its signature is checked once (every viewer of a job brings the same token), its expiry and job on every
    open."""
    issuer = tokens(tmp_path, ttl_s=60)
    token = issuer.issue(JOB, "acme", KID)
    assert issuer.verify(token, JOB).tenant == "acme"
    assert issuer.verify(token, JOB, now=time.time() + 50).tenant == "acme"
    with pytest.raises(InvalidStreamToken, match="expired"):
        issuer.verify(token, JOB, now=time.time() + 61 + CLOCK_SKEW_S)
    with pytest.raises(InvalidStreamToken, match="another job"):
        issuer.verify(token, OTHER_JOB)


def test_clocks_that_differ_by_seconds_agree_on_a_token(tmp_path: Path) -> None:
    """A JobService whose clock runs ahead of the bridge's issues tokens the bridge takes."""
    issuer = tokens(tmp_path)
    assert issuer.verify(issuer.issue(JOB, "acme", KID, now=time.time() + 10), JOB).tenant == "acme"
    with pytest.raises(InvalidStreamToken, match="not yet valid"):
        issuer.verify(issuer.issue(JOB, "acme", KID, now=time.time() + 10 * CLOCK_SKEW_S), JOB)


@pytest.mark.parametrize("secret", ["short", "x" * 31])
def test_a_short_secret_is_refused(tmp_path: Path, secret: str) -> None:
    with pytest.raises(WeakSecret, match="at least 32"):
        tokens(tmp_path, secret=secret)
    (tmp_path / "stream-token-secret").write_text(secret)
    with pytest.raises(WeakSecret):
        StreamTokens(Settings(state_dir=tmp_path))


def test_a_token_without_an_expiry_subject_or_key_id_is_refused(tmp_path: Path) -> None:
    # Signed with the right secret, but a token without `exp` would be valid forever.
    now = int(time.time())
    claims = {"sub": JOB, "ten": "acme", "kid": KID, "aud": AUDIENCE, "iat": now, "exp": now + 60}
    for missing in ("exp", "sub", "iat", "kid"):
        token = jwt.encode({k: v for k, v in claims.items() if k != missing}, SECRET, algorithm=ALGORITHM)
        with pytest.raises(InvalidStreamToken):
            tokens(tmp_path).verify(token, JOB)
    assert tokens(tmp_path).verify(jwt.encode(claims, SECRET, algorithm=ALGORITHM), JOB).tenant == "acme"


def test_wrong_or_missing_audience(tmp_path: Path) -> None:
    now = int(time.time())
    claims = {"sub": JOB, "ten": "acme", "kid": KID, "iat": now, "exp": now + 60}
    for extra in ({"aud": "someone.else"}, {}):
        token = jwt.encode({**claims, **extra}, SECRET, algorithm=ALGORITHM)
        with pytest.raises(InvalidStreamToken):
            tokens(tmp_path).verify(token, JOB)


def test_missing_or_bad_tenant(tmp_path: Path) -> None:
    now = int(time.time())
    for tenant in ({}, {"ten": 7}, {"ten": None}):
        token = jwt.encode(
            {"sub": JOB, "kid": KID, "aud": AUDIENCE, "iat": now, "exp": now + 60, **tenant},
            SECRET,
            algorithm=ALGORITHM,
        )
        with pytest.raises(InvalidStreamToken):
            tokens(tmp_path).verify(token, JOB)


def test_unsigned_and_other_algorithms_are_refused(tmp_path: Path) -> None:
    now = int(time.time())
    claims = {"sub": JOB, "ten": "acme", "kid": KID, "aud": AUDIENCE, "iat": now, "exp": now + 60}
    unsigned = jwt.encode(claims, key="", algorithm="none")
    hs512 = jwt.encode(claims, SECRET, algorithm="HS512")
    for token in (unsigned, hs512):
        with pytest.raises(InvalidStreamToken):
            tokens(tmp_path).verify(token, JOB)


@pytest.mark.parametrize(
    "garbage", ["", "x", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.e30.", "\u00e9\u00e9.\u00e9.\u00e9"]
)
def test_garbage(tmp_path: Path, garbage: str) -> None:
    with pytest.raises(InvalidStreamToken):
        tokens(tmp_path).verify(garbage, JOB)


def test_generated_secret_is_made_once_and_shared(tmp_path: Path) -> None:
    """With no configured secret, every process of one stack signs with the one written into STATE_DIR."""
    issuer, verifier = tokens(tmp_path, secret=""), tokens(tmp_path, secret="")
    assert verifier.verify(issuer.issue(JOB, "acme", KID), JOB).tenant == "acme"
    path = tmp_path / "stream-token-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) >= 32
    # Another stack (another state dir) cannot verify it.
    other = tmp_path / "other"
    with pytest.raises(InvalidStreamToken):
        tokens(other, secret="").verify(issuer.issue(JOB, "acme", KID), JOB)


def test_the_grant_names_the_key_the_token_was_issued_to(tmp_path: Path) -> None:
    issuer = tokens(tmp_path)
    assert issuer.verify(issuer.issue(JOB, "acme", KID), JOB).key_id == KID
