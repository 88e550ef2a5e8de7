"""devstack/healthcheck.py: the container health checks say unhealthy for every way a process can be down."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from devstack.healthcheck import Unhealthy, check, main
from jobstream import settings as settings_module
from jobstream.readiness import mark_ready
from jobstream.settings import Settings


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def test_worker_is_healthy_while_the_process_that_announced_it_lives(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(Unhealthy, match="has not announced readiness"):
        check(["worker", "cpu-worker"], settings)
    (run / "cpu-worker.ready").write_text(str(os.getpid()))
    check(["worker", "cpu-worker"], settings)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    (run / "cpu-worker.ready").write_text(gone.stdout.decode())
    with pytest.raises(Unhealthy, match="is gone"):
        check(["worker", "cpu-worker"], settings)
    (run / "cpu-worker.ready").write_text("")
    with pytest.raises(Unhealthy):
        check(["worker", "cpu-worker"], settings)


def test_worker_file_is_the_one_readiness_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBSTREAM_STATE_DIR", str(tmp_path))
    settings_module.get_settings.cache_clear()
    try:
        mark_ready("gpu-worker-tinylm")
        check(["worker", "gpu-worker-tinylm"], Settings())
    finally:
        settings_module.get_settings.cache_clear()


def test_servers_that_do_not_answer_are_unhealthy(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, grpc_port=closed_port(), bridge_port=closed_port())
    with pytest.raises(Unhealthy, match="JobService"):
        check(["job-service"], settings)
    with pytest.raises(Unhealthy, match="/healthz"):
        check(["sse-bridge"], settings)


@pytest.mark.parametrize("argv", [[], ["worker"], ["nope"], ["job-service", "extra"]])
def test_bad_command_line_is_unhealthy(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    assert "usage" in capsys.readouterr().err


@pytest.fixture
def health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, servicer
    server.stop(grace=None)


def test_job_service_must_say_serving(tmp_path: Path, health_server: tuple[int, health.HealthServicer]) -> None:
    port, servicer = health_server
    settings = Settings(state_dir=tmp_path, grpc_port=port)
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    check(["job-service"], settings)
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)  # e.g. draining on SIGTERM
    with pytest.raises(Unhealthy, match="NOT_SERVING"):
        check(["job-service"], settings)


class _Healthz(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_sse_bridge_must_answer_200(tmp_path: Path) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        settings = Settings(state_dir=tmp_path, bridge_port=server.server_address[1])
        check(["sse-bridge"], settings)
        _Healthz.status = 503
        with pytest.raises(Unhealthy, match="answered 503"):
            check(["sse-bridge"], settings)
    finally:
        _Healthz.status = 200
        server.shutdown()
        server.server_close()
        thread.join()
