"""The repository's development secrets serve on loopback only: bound anywhere else, the JobService and the
SSE bridge refuse to start with one, naming it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jobstream.settings import PROJECT_ROOT, Settings

OWN = {"stream_token_secret": "s" * 32, "minio_secret_key": "m" * 32, "minio_root_password": "r" * 32}


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_may_use_them(host: str) -> None:
    Settings(bind_host=host, stream_token_secret="jobstream-dev-stream-token-secret").refuse_development_secrets()


@pytest.mark.parametrize("secret", sorted(OWN))
def test_beyond_loopback_each_is_refused_by_name(secret: str) -> None:
    known = {"stream_token_secret": "jobstream-dev-stream-token-secret"}.get(secret)
    values = {**OWN, secret: known or str(Settings.model_fields[secret].default)}
    with pytest.raises(SystemExit, match=f"JOBSTREAM_{secret.upper()}"):
        Settings(bind_host="0.0.0.0", **values).refuse_development_secrets()  # type: ignore[arg-type]


def test_beyond_loopback_own_secrets_pass() -> None:
    Settings(bind_host="0.0.0.0", **OWN).refuse_development_secrets()  # type: ignore[arg-type]


@pytest.mark.parametrize("module", ["services.job_service", "sse_bridge"])
def test_the_processes_refuse_to_start(module: str, tmp_path: object) -> None:
    env = {**os.environ, "JOBSTREAM_BIND_HOST": "0.0.0.0", "JOBSTREAM_STATE_DIR": str(tmp_path)}
    env.pop("JOBSTREAM_MINIO_SECRET_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", module], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "JOBSTREAM_MINIO_SECRET_KEY" in done.stderr
    assert "Traceback" not in done.stderr
