"""Obtain every real server and tool the local stack needs, step by step, cached by version.

Run as `python -m devstack.bootstrap` (scripts/bootstrap does it after creating the virtual environment);
`jobstream up` calls `ensure()` too, which takes well under a second once everything is cached.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from devstack import buf, chromium, grpcurl, kafka, minio, temporal_server, triton
from jobstream.settings import PROJECT_ROOT, Settings, get_settings
from workers.tinylm import train

T = TypeVar("T")


class BootstrapError(RuntimeError):
    pass


@dataclass(frozen=True)
class Tools:
    venv: Path
    temporal: Path
    minio: Path
    kafka_libs: Path
    triton_backends: Path
    grpcurl: Path
    buf: Path


def _step(number: int, total: int, title: str, action: Callable[[], T], quiet: bool) -> T:
    started = time.monotonic()
    if not quiet:
        print(f"[{number}/{total}] {title} ...", flush=True)
    try:
        result = action()
    except subprocess.CalledProcessError as exc:
        command = shlex.join(str(part) for part in exc.cmd)
        raise BootstrapError(
            f"step {number}/{total} ({title}) failed: `{command}` exited with {exc.returncode}"
        ) from exc
    except Exception as exc:
        raise BootstrapError(f"step {number}/{total} ({title}) failed: {exc}") from exc
    if not quiet:
        print(f"[{number}/{total}] {title}: {result} ({time.monotonic() - started:.1f}s)", flush=True)
    return result


def _train_models(settings: Settings) -> Path:
    weights = settings.model_repository / "tinylm" / "1" / "weights.npz"
    corpus = PROJECT_ROOT / "workers" / "tinylm" / "corpus" / "corpus.txt"
    if not weights.exists() or weights.stat().st_mtime < corpus.stat().st_mtime:
        train.train(corpus, weights)
    return weights


def ensure(settings: Settings | None = None, quiet: bool = False) -> Tools:
    settings = settings or get_settings()
    cache = settings.cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    venv = Path(sys.prefix)
    steps = 8
    temporal_bin = _step(
        1, steps, f"Temporal CLI {temporal_server.TEMPORAL_CLI_VERSION}", lambda: temporal_server.install(cache), quiet
    )
    minio_bin = _step(2, steps, "MinIO server", lambda: minio.install(cache), quiet)
    kafka_libs = _step(3, steps, f"Apache Kafka {kafka.KAFKA_VERSION} broker", lambda: kafka.install(cache), quiet)
    backends = _step(4, steps, "Triton server and Python backend", lambda: triton.install(cache, venv), quiet)
    grpcurl_bin = _step(5, steps, f"grpcurl {grpcurl.GRPCURL_VERSION}", lambda: grpcurl.install(cache), quiet)
    buf_bin = _step(6, steps, f"buf {buf.BUF_VERSION}", lambda: buf.install(cache), quiet)
    _step(7, steps, "language models (trained on the shipped corpus)", lambda: _train_models(settings), quiet)
    _step(8, steps, "chromium (for the browser tests)", chromium.install, quiet)
    return Tools(venv, temporal_bin, minio_bin, kafka_libs, backends, grpcurl_bin, buf_bin)


def main() -> int:
    started = time.monotonic()
    try:
        ensure()
    except BootstrapError as exc:
        print(f"bootstrap: {exc}", file=sys.stderr)
        return 1
    print(f"bootstrap: everything is in place ({time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
