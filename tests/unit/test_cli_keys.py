"""`jobstream keys add TENANT` prints a new key once and keeps its digest; `keys revoke KEY` removes it; the
CLI without a key says how to get one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from jobstream.auth import tenant_of_key
from jobstream.keys_store import keys_file, load_keys
from jobstream.settings import PROJECT_ROOT, Settings


def jobstream(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JOBSTREAM_STATE_DIR": str(tmp_path)}
    env.pop("JOBSTREAM_API_KEY", None)
    env.pop("JOBSTREAM_API_KEYS_FILE", None)
    return subprocess.run(
        [sys.executable, "-m", "jobstream.cli", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_key_is_printed_once_and_stored_as_its_digest(tmp_path: Path) -> None:
    added = jobstream(tmp_path, "keys", "add", "acme")
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    settings = Settings(state_dir=tmp_path)
    assert tenant_of_key(load_keys(settings), key) == "acme"
    assert key not in keys_file(settings).read_text()
    assert jobstream(tmp_path, "keys", "revoke", key).returncode == 0
    assert tenant_of_key(load_keys(settings), key) is None


def test_a_bad_tenant_name_is_refused_plainly(tmp_path: Path) -> None:
    refused = jobstream(tmp_path, "keys", "add", "Acme/x")
    assert refused.returncode != 0
    assert "lowercase" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_without_a_key_the_cli_says_how_to_get_one(tmp_path: Path) -> None:
    refused = jobstream(tmp_path, "list")
    assert refused.returncode != 0
    assert "JOBSTREAM_API_KEY" in refused.stderr
    assert not keys_file(Settings(state_dir=tmp_path)).exists()  # the CLI never makes a key
