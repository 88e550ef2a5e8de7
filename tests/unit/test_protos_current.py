"""The committed generated code under jobstream/v1 is what scripts/gen-protos makes from protos/,
and the .proto sources pass `buf lint` (STANDARD rules, buf.yaml) and `buf format`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import buf
from devstack.gen_protos import googleapis_root
from jobstream.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
GEN_SCRIPT = ROOT / "scripts" / "gen-protos"
GENERATED_DIR = Path("jobstream") / "v1"
GENERATED_PATTERNS = ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py", "*_pb2_grpc.pyi")


def _generated(out_root: Path) -> dict[str, bytes]:
    directory = out_root / GENERATED_DIR
    return {path.name: path.read_bytes() for pattern in GENERATED_PATTERNS for path in directory.glob(pattern)}


def _regenerate(out_root: Path) -> dict[str, bytes]:
    env = {**os.environ, "JOBSTREAM_PYTHON": sys.executable}
    done = subprocess.run([str(GEN_SCRIPT), str(out_root)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"scripts/gen-protos failed ({done.returncode}):\n{done.stdout}{done.stderr}"
    return _generated(out_root)


def test_generated_code_is_current(tmp_path: Path) -> None:
    fresh = _regenerate(tmp_path)
    committed = _generated(ROOT)
    assert fresh, "scripts/gen-protos generated nothing"
    stale = sorted(name for name in fresh.keys() & committed.keys() if fresh[name] != committed[name])
    problems = [f"{GENERATED_DIR / name}: stale" for name in stale]
    problems += [f"{GENERATED_DIR / name}: missing" for name in sorted(fresh.keys() - committed.keys())]
    problems += [f"{GENERATED_DIR / name}: no longer generated" for name in sorted(committed.keys() - fresh.keys())]
    assert not problems, "generated code differs from protos/; run scripts/gen-protos and commit:\n  " + "\n  ".join(
        problems
    )


def test_generation_is_deterministic(tmp_path: Path) -> None:
    assert _regenerate(tmp_path / "first") == _regenerate(tmp_path / "second")


def _buf() -> Path:
    cache_root = get_settings().cache_dir
    found = buf.find(cache_root)
    if found is None:
        pytest.fail(
            f"buf not found: set {buf.ENV_VAR}, put buf on PATH, or run the bootstrap, which installs "
            f"{buf.cached_path(cache_root)} (buf {buf.BUF_VERSION})"
        )
    return found


def _run_buf(workspace: Path, *args: str) -> None:
    command = [str(_buf()), *args]
    done = subprocess.run(command, cwd=workspace, capture_output=True, text=True)
    assert done.returncode == 0, f"`buf {' '.join(args)}` failed ({done.returncode}):\n{done.stdout}{done.stderr}"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """buf.yaml and protos/, plus google/api/*.proto from the installed googleapis-common-protos as a second
    module (what gen-protos compiles with): no network registry."""
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    deps = tmp_path / "third_party" / "google" / "api"
    deps.mkdir(parents=True)
    for name in ("annotations.proto", "http.proto"):
        shutil.copy(googleapis_root() / "google" / "api" / name, deps / name)
    return tmp_path


def test_buf_lint(workspace: Path) -> None:
    _run_buf(workspace, "lint", "protos")


def test_buf_format(workspace: Path) -> None:
    _run_buf(workspace, "format", "protos", "--diff", "--exit-code")
