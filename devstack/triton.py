"""NVIDIA Triton Inference Server, standalone, from the `nvidia-pytriton` wheel.

The wheel (0.7.0) ships a real `tritonserver` 2.51 (release 24.10), the Python backend
(`libtriton_python.so`, `triton_python_backend_utils.py`) and one Python backend stub per Python
version. Triton wants them together in one backend directory, so `install()` assembles
`<cache>/triton-2.51/backends/python/` once; `command()` and `environment()` then run the server
binary straight out of the wheel on the project's own model repository.

Three things it needs (measured, see /work/shared/SERVERS.md):
- the stub links `libpython3.X.so.1.0`: `LD_LIBRARY_PATH` must name the interpreter's own `lib/`
  first (with pyenv, Debian's older libpython is found otherwise and models fail to load); the
  copied stub and `.so` also need the wheel's vendored libraries (`nvidia_pytriton.libs`), which their
  RPATH only finds relative to the wheel;
- the stub takes its Python environment from `python3` on `PATH`, so the venv's `bin/` goes first
  (numpy < 2 there: numpy 2 breaks BYTES tensors inside the 24.10 stub);
- explicit addresses and ports, and `/dev/shm` regions cleaned up after a crashed stub.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

TRITON_VERSION = "2.51"
PYTRITON_VERSION = "0.7.0"

_BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")
_STUB = "triton_python_backend_stub"
_STAMP = ".installed.json"
_SHM_DIR = Path("/dev/shm")
_SHM_PREFIX = "triton_python_backend_shm_region_"


def _site_packages(venv: Path) -> Path:
    """The venv's site-packages holding the pytriton wheel."""
    for candidate in sorted((venv.absolute() / "lib").glob("python3.*/site-packages")):
        if (candidate / "pytriton" / "tritonserver").is_dir():
            return candidate
    raise FileNotFoundError(
        f"nvidia-pytriton=={PYTRITON_VERSION} is not installed in {venv} "
        "(it is in the 'servers' dependency group: run `uv sync`)"
    )


def _wheel_root(venv: Path) -> Path:
    return _site_packages(venv) / "pytriton" / "tritonserver"


def _python_version(venv: Path) -> str:
    """major.minor of the venv's interpreter, read from its site-packages path (lib/python3.X)."""
    return _site_packages(venv).parent.name.removeprefix("python")


def server_binary(venv: Path) -> Path:
    """The `tritonserver` executable inside the installed wheel."""
    binary = _wheel_root(venv) / "bin" / "tritonserver"
    if not binary.is_file():
        raise FileNotFoundError(f"no tritonserver in the nvidia-pytriton wheel: {binary}")
    return binary


def _sources(venv: Path) -> dict[str, Path]:
    """Backend file name -> where it is in the wheel."""
    wheel = _wheel_root(venv)
    version = _python_version(venv)
    sources = {name: wheel / "backends" / "python" / name for name in _BACKEND_FILES}
    sources[_STUB] = wheel / "python_backend_stubs" / version / _STUB
    for path in sources.values():
        if not path.is_file():
            raise FileNotFoundError(f"the nvidia-pytriton wheel lacks {path} (Python {version})")
    return sources


def _fingerprint(sources: dict[str, Path]) -> dict[str, list[int]]:
    return {name: [path.stat().st_size, path.stat().st_mtime_ns] for name, path in sources.items()}


def install(cache_root: Path, venv: Path) -> Path:
    """Assemble Triton's backend directory from the wheel; return the backends root.

    Idempotent and cheap once done (a stamp records the sources' sizes and mtimes; a different wheel
    re-assembles). Safe to call from two processes at once (a file lock); the directory is replaced
    atomically so a running server never sees a half-copied backend.
    """
    sources = _sources(venv)
    root = cache_root / f"triton-{TRITON_VERSION}"
    backends = root / "backends"
    target = backends / "python"
    wanted = {"python": _python_version(venv), "files": _fingerprint(sources)}

    def done() -> bool:
        try:
            stamp = json.loads((target / _STAMP).read_text())
        except (OSError, ValueError):
            return False
        return bool(stamp == wanted) and all((target / name).is_file() for name in sources)

    if done():
        return backends
    backends.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done():
            return backends
        staging = Path(tempfile.mkdtemp(prefix=".python-", dir=backends))
        try:
            for name, source in sources.items():
                shutil.copy2(source, staging / name)
            staging.chmod(0o755)
            (staging / _STUB).chmod(0o755)
            (staging / _STAMP).write_text(json.dumps(wanted, sort_keys=True))
            old = backends / f".old-{os.getpid()}"
            if target.exists():
                target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return backends


@functools.lru_cache(maxsize=8)
def _libpython_dir(python: Path) -> Path:
    """sysconfig LIBDIR of an interpreter, checked to hold the shared libpython the stub links."""
    script = (
        "import sysconfig; "
        "print(sysconfig.get_config_var('LIBDIR')); "
        "print(sysconfig.get_config_var('INSTSONAME') or '')"
    )
    out = subprocess.run([str(python), "-c", script], check=True, capture_output=True, text=True)
    libdir_line, soname = [*out.stdout.splitlines(), "", ""][:2]
    libdir = Path(libdir_line)
    if not soname or not (libdir / soname).exists():
        raise RuntimeError(
            f"{python} has no shared libpython in {libdir} ({soname or 'built without --enable-shared'}); "
            "Triton's Python backend stub links libpython3.X.so.1.0. Rebuild the interpreter with "
            "--enable-shared (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install ...)."
        )
    return libdir


def environment(venv: Path) -> dict[str, str]:
    """Environment variables to set (over os.environ) when starting `command()`.

    LD_LIBRARY_PATH: the venv interpreter's own lib dir (its libpython), then the wheel's vendored
    libraries, then whatever was set before. PATH: the venv's bin first, so the stub's `python3` is
    the venv's (numpy < 2). Existing values are kept after ours.
    """
    venv = venv.absolute()
    python = venv / "bin" / "python3"
    libs = [str(_libpython_dir(python)), str(_site_packages(venv) / "nvidia_pytriton.libs")]
    path = [str(venv / "bin")]
    for name, parts in (("LD_LIBRARY_PATH", libs), ("PATH", path)):
        existing = os.environ.get(name)
        if existing:
            parts.extend(p for p in existing.split(os.pathsep) if p and p not in parts)
    return {
        "LD_LIBRARY_PATH": os.pathsep.join(libs),
        "PATH": os.pathsep.join(path),
        "VIRTUAL_ENV": str(venv),
    }


def command(
    venv: Path,
    backends: Path,
    model_repository: Path,
    host: str,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    models: list[str],
) -> list[str]:
    """The tritonserver command line for the local stack (CPU-only friendly), loading `models`."""
    return [
        str(server_binary(venv)),
        "--model-repository",
        str(model_repository.absolute()),
        "--backend-directory",
        str(backends.absolute()),
        "--http-address",
        host,
        "--http-port",
        str(http_port),
        "--grpc-address",
        host,
        "--grpc-port",
        str(grpc_port),
        "--allow-metrics",
        "true",
        "--metrics-address",
        host,
        "--metrics-port",
        str(metrics_port),
        # No DCGM/GPU metrics poller on a machine without GPUs (or with them: we do not need them).
        "--allow-gpu-metrics",
        "false",
        "--strict-readiness",
        "true",
        "--exit-on-error",
        "true",
        "--exit-timeout-secs",
        "5",
        # Only the models this machine can run: the repository also holds GPU models (the vLLM one).
        "--model-control-mode",
        "explicit",
        *(f"--load-model={model}" for model in models),
        # The configs are complete: skip the auto-complete pass, which starts an extra Python stub
        # per model just to ask it for a config.
        "--disable-auto-complete-config",
        # Python-backend models run on CPU; no pinned (CUDA host) memory pool to allocate.
        "--pinned-memory-pool-byte-size",
        "0",
        "--log-verbose",
        "0",
    ]


_BACKEND = re.compile(r'^backend:\s*"([^"]+)"', re.MULTILINE)


def local_models(repository: Path, wanted: Iterable[str]) -> list[str]:
    """The models of `wanted` that the local Triton can run: Python-backend ones (numpy on a CPU), not
    those of a GPU backend such as vLLM."""
    local = []
    for model in sorted(wanted):
        config = repository / model / "config.pbtxt"
        backend = _BACKEND.search(config.read_text()) if config.is_file() else None
        if backend is not None and backend.group(1) == "python":
            local.append(model)
    return local


def _shm_in_use() -> set[str]:
    """Names of /dev/shm entries some live process has open or mapped (as far as /proc shows us)."""
    used: set[str] = set()
    prefix = str(_SHM_DIR / _SHM_PREFIX)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                try:
                    link = os.readlink(fd)
                except OSError:
                    continue
                if link.startswith(prefix):
                    used.add(Path(link.split(" ")[0]).name)
            with open(proc / "maps") as maps:
                for line in maps:
                    at = line.find(prefix)
                    if at >= 0:
                        used.add(Path(line[at:].split(" ")[0].strip()).name)
        except OSError:  # gone, or not ours to read
            continue
    return used


def orphaned_shm() -> list[Path]:
    """`/dev/shm/triton_python_backend_shm_region_*` entries no live process has open or mapped."""
    try:
        regions = sorted(_SHM_DIR.glob(_SHM_PREFIX + "*"))
    except OSError:
        return []
    if not regions:
        return []
    in_use = _shm_in_use()
    return [region for region in regions if region.name not in in_use]


def cleanup_shm() -> None:
    """Remove the regions crashed Python stubs left behind (`orphaned_shm`).

    Regions some live process still has open or mapped (per /proc/*/fd and /proc/*/maps) are kept,
    so it is safe to call while another Triton runs, as long as /proc shows that server's processes
    (same PID namespace, and root or the same user). Always safe after this server has exited.
    """
    for region in orphaned_shm():
        with contextlib.suppress(OSError):
            region.unlink()


if __name__ == "__main__":  # pragma: no cover - manual use: print the command line
    _venv = Path(sys.prefix)
    _backends = install(Path.home() / ".cache" / "jobstream", _venv)
    print(json.dumps(environment(_venv), indent=2))
    _repository = Path("workers/model_repository")
    _models = local_models(_repository, [d.name for d in _repository.iterdir() if d.is_dir()])
    print(" ".join(command(_venv, _backends, _repository, "127.0.0.1", 8000, 8001, 8002, _models)))
