"""Container health checks for jobstream's own processes (docker-compose `healthcheck:`).

    python -m devstack.healthcheck job-service      # gRPC health of the JobService says SERVING
    python -m devstack.healthcheck sse-bridge       # the bridge answers /healthz with 200
    python -m devstack.healthcheck worker ROLE      # the worker ROLE announced readiness and is still alive

Exit status 0 when healthy, 1 (with the reason on stderr) when not: what Docker expects of a health check.
"""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Sequence

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from jobstream.settings import Settings, get_settings

TIMEOUT_S = 3.0


class Unhealthy(Exception):
    pass


def job_service(settings: Settings) -> None:
    ca = settings.server_ca_file
    credentials = grpc.ssl_channel_credentials(ca.read_bytes()) if ca else None
    channel = (
        grpc.secure_channel(settings.grpc_target, credentials)
        if credentials
        else grpc.insecure_channel(settings.grpc_target)
    )
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S)
        except grpc.RpcError as exc:
            raise Unhealthy(f"JobService at {settings.grpc_target}: {exc.code()}") from exc
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise Unhealthy(
            f"JobService at {settings.grpc_target} is {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
        )


def sse_bridge(settings: Settings) -> None:
    url = f"{settings.local_bridge_url}/healthz"
    ca = settings.server_ca_file
    verify = ssl.create_default_context(cafile=str(ca)) if ca else True
    try:
        status = httpx.get(url, timeout=TIMEOUT_S, verify=verify).status_code
    except httpx.HTTPError as exc:
        raise Unhealthy(f"{url}: {exc}") from exc
    if status != 200:
        raise Unhealthy(f"{url} answered {status}")


def worker(settings: Settings, role: str) -> None:
    """The ready file names the pid that wrote it; the worker is healthy while that process lives."""
    path = settings.state_dir / "run" / f"{role}.ready"
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise Unhealthy(f"{role} has not announced readiness ({path}: {exc})") from exc
    try:
        os.kill(pid, 0)
    except ProcessLookupError as exc:
        raise Unhealthy(f"{role} (pid {pid}) is gone") from exc
    except PermissionError:
        pass  # it exists, under another user


def check(argv: Sequence[str], settings: Settings) -> None:
    """Raise Unhealthy (or ValueError for a bad command line) unless the named process is healthy."""
    match list(argv):
        case ["job-service"]:
            job_service(settings)
        case ["sse-bridge"]:
            sse_bridge(settings)
        case ["worker", role]:
            worker(settings, role)
        case _:
            raise ValueError("usage: python -m devstack.healthcheck job-service | sse-bridge | worker ROLE")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        check(sys.argv[1:] if argv is None else argv, get_settings())
    except (Unhealthy, ValueError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
