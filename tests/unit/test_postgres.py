"""devstack/postgres.py: as root the server runs as the `postgres` user, exec'd in place so that the pid the
supervisor holds (and a fault test's SIGKILL) is the server's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import postgres


def test_as_root_the_server_is_execd_as_the_postgres_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr(postgres, "_own", lambda _: None)
    argv = postgres.command(Path("/pg/bin"), tmp_path, "127.0.0.1", 15432)
    assert argv[:5] == ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    assert argv[5] == "/pg/bin/postgres"
    assert "listen_addresses=127.0.0.1" in argv
    assert f"max_connections={postgres.MAX_CONNECTIONS}" in argv


def test_as_another_user_it_runs_as_that_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert postgres.as_service_user(["/pg/bin/initdb"]) == ["/pg/bin/initdb"]
