"""PostgreSQL 15 (Debian's package) for the cluster profile's Temporal: one server, its data under the state
dir. PostgreSQL refuses to run as root, so as root its processes run as the `postgres` user (`setpriv` execs
in place, so the pid the supervisor holds is the server's own and a SIGKILL reaches it)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from devstack.debian import apt_install

PACKAGE = "postgresql-15"
BIN_DIR = Path("/usr/lib/postgresql/15/bin")
SERVICE_USER = "postgres"
# Two Temporal nodes with their default pools (persistence and visibility, per service) need well over 100.
MAX_CONNECTIONS = 400


def install() -> Path:
    """The directory of PostgreSQL 15's programs, installed with apt where they are missing."""
    if not (BIN_DIR / "postgres").is_file():
        apt_install(PACKAGE, "no PostgreSQL 15")
    return BIN_DIR


def as_service_user(argv: list[str]) -> list[str]:
    """`argv` run as the `postgres` user when this process is root (PostgreSQL will not run as root)."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", f"--reuid={SERVICE_USER}", f"--regid={SERVICE_USER}", "--init-groups", "--", *argv]


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVICE_USER)
        shutil.chown(path, user.pw_uid, user.pw_gid)


def init_data(bin_dir: Path, data_dir: Path) -> None:
    """A database cluster in `data_dir`, once (trust authentication: it listens on loopback only)."""
    if (data_dir / "PG_VERSION").is_file():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    _own(data_dir)
    argv = [str(bin_dir / "initdb"), "-D", str(data_dir), "--auth=trust", f"--username={SERVICE_USER}"]
    subprocess.run(as_service_user([*argv, "--encoding=UTF8", "--no-instructions"]), check=True, capture_output=True)


def command(bin_dir: Path, data_dir: Path, host: str, port: int) -> list[str]:
    """The server in the foreground (the supervisor's child), its socket beside its data."""
    socket_dir = data_dir / "socket"
    socket_dir.mkdir(exist_ok=True)
    _own(socket_dir)
    return as_service_user(
        [
            str(bin_dir / "postgres"),
            "-D",
            str(data_dir),
            "-p",
            str(port),
            "-k",
            str(socket_dir),
            "-c",
            f"listen_addresses={host}",
            "-c",
            f"max_connections={MAX_CONNECTIONS}",
        ]
    )


def ready(bin_dir: Path, host: str, port: int) -> bool:
    return (
        subprocess.run([str(bin_dir / "pg_isready"), "-h", host, "-p", str(port)], capture_output=True).returncode == 0
    )
