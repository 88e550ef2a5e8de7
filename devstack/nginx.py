"""nginx OSS (Debian's 1.22) for the cluster profile: the edge clients reach (TLS for gRPC and for HTTP/SSE,
rate limits, passive failover between replicas) and the internal balancer in front of the Temporal and MinIO
nodes, so that every client keeps one address. Each runs in the foreground under the supervisor, with its
configuration, temporary files and pid under the state directory, never /etc/nginx or /var."""

from __future__ import annotations

import os
import pwd
import textwrap
from dataclasses import dataclass
from pathlib import Path

from devstack.debian import apt_install
from jobstream.partitioning import owner_of

BINARY = Path("/usr/sbin/nginx")
# The requests one client address or one API key (or stream token) may make, and what they may burst to:
# generous, because every local client shares 127.0.0.1; a caller with neither key nor token gets far less.
PER_ADDRESS = "2000r/s burst=4000"
PER_KEY = "500r/s burst=1000"
ANONYMOUS = "20r/s burst=40"
# Long enough for a WatchJob or an SSE stream; the services' own keep-alives keep them from idling out.
STREAM_TIMEOUT = "1h"
RATE_LIMITED = "too many requests from this address or API key at the edge; retry in a second"
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
MAX_BODY = "64m"  # above every model's input limit: the services refuse what is too long, with a clear error


def install() -> Path:
    if not BINARY.is_file():
        apt_install("nginx", "no nginx")
    return BINARY


@dataclass(frozen=True)
class Edge:
    host: str
    grpc_port: int
    http_port: int
    job_services: list[int]
    bridges: list[int]
    certificate: Path
    key: Path
    partitions: int  # of the events topic: a stream goes to the bridge that tails its job's partition


@dataclass(frozen=True)
class Balancer:
    host: str
    temporal_port: int
    temporal_nodes: list[int]
    minio_port: int
    minio_nodes: list[int]
    job_service_port: int
    job_services: list[int]


def command(prefix: Path, config: str) -> list[str]:
    """Write `config` into `prefix` and give the command that runs it in the foreground."""
    for temp in TEMP_PATHS:
        (prefix / "temp" / temp).mkdir(parents=True, exist_ok=True)
    (prefix / "nginx.conf").write_text(config)
    return [str(BINARY), "-p", str(prefix), "-c", "nginx.conf", "-e", "stderr", "-g", "daemon off;"]


def _main(prefix: Path, http: str) -> str:
    # As root nginx would hand its workers to `nobody`, who cannot write the temporary files under the state
    # directory: they run as whoever owns it.
    user = f"user {pwd.getpwuid(os.stat(prefix).st_uid).pw_name};" if os.geteuid() == 0 else ""
    temps = "\n".join(f"    {name}_temp_path temp/{name};" for name in TEMP_PATHS)
    return "\n".join(
        [
            user,
            "worker_processes 1;",
            "worker_rlimit_nofile 65536;",
            f"pid {prefix / 'nginx.pid'};",
            "error_log stderr warn;",
            "events { worker_connections 30000; }",
            "http {",
            "    access_log off;",
            "    server_tokens off;",
            temps,
            textwrap.indent(http, "    "),
            "}",
            "",
        ]
    )


def _upstream(name: str, host: str, ports: list[int], keepalive: int, backups: list[int] | None = None) -> str:
    # One failure marks a replica down for a few seconds: the next request goes to the other at once.
    servers = [f"    server {host}:{port} max_fails=1 fail_timeout=5s;" for port in ports]
    servers += [f"    server {host}:{port} max_fails=1 fail_timeout=5s backup;" for port in backups or []]
    return f"upstream {name} {{\n" + "\n".join(servers) + f"\n    keepalive {keepalive};\n}}"


def _bridge_routes(edge: Edge) -> list[str]:
    """A stream to the bridge that owns its job's partition (jobstream/partitioning.py: p % replicas), the others
    as its backups; the events URL names the partition (`?partition=`). Anything else, or a URL without it, to
    any bridge: the bridge derives the partition from the job id itself, so a wrong one costs only efficiency."""
    owners = [
        _upstream(f"bridge_{index}", edge.host, [port], 64, [other for other in edge.bridges if other != port])
        for index, port in enumerate(edge.bridges)
    ]
    routes = "\n".join(
        f'    "{partition}" bridge_{owner_of(partition, len(edge.bridges))};' for partition in range(edge.partitions)
    )
    return [f"map $arg_partition $bridge_route {{\n    default bridges;\n{routes}\n}}", *owners]


def _server(listen: str, settings: str, locations: str) -> str:
    body = "\n".join([listen, settings.rstrip(), textwrap.dedent(locations).rstrip()])
    return "server {\n" + textwrap.indent(body, "    ") + "\n}"


def edge_config(prefix: Path, edge: Edge) -> str:
    """TLS termination; gRPC to the JobService replicas, HTTP and SSE to the bridge replicas."""
    limits = textwrap.dedent(
        f"""\
        map $http_authorization $key_or_token {{ "" $arg_token; default $http_authorization; }}
        map $key_or_token $anonymous_address {{ "" $binary_remote_addr; default ""; }}
        limit_req_zone $binary_remote_addr zone=per_address:10m rate={PER_ADDRESS.split()[0]};
        limit_req_zone $key_or_token zone=per_key:10m rate={PER_KEY.split()[0]};
        limit_req_zone $anonymous_address zone=anonymous:10m rate={ANONYMOUS.split()[0]};
        limit_req_status 429;
        limit_req_log_level warn;
        """
    )
    applied = "\n".join(
        f"limit_req zone={zone} {rate.split()[1]} nodelay;"
        for zone, rate in (("per_address", PER_ADDRESS), ("per_key", PER_KEY), ("anonymous", ANONYMOUS))
    )
    tls = textwrap.dedent(
        f"""\
        ssl_certificate {edge.certificate};
        ssl_certificate_key {edge.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        client_max_body_size {MAX_BODY};
        """
    )
    grpc = _server(
        f"listen {edge.host}:{edge.grpc_port} ssl http2;",
        tls + applied,
        f"""\
            # Refused by a rate limit: RESOURCE_EXHAUSTED, as the JobService's own limits answer (a bare HTTP
            # 429 would reach a gRPC client as UNAVAILABLE, "retry at once").
            error_page 429 = @rate_limited;
            location @rate_limited {{
                internal;
                default_type application/grpc;
                add_header grpc-status 8 always;
                add_header grpc-message "{RATE_LIMITED}" always;
                return 204;
            }}
            location / {{
                grpc_pass grpc://job_services;
                grpc_set_header X-Forwarded-For $remote_addr;
                grpc_read_timeout {STREAM_TIMEOUT};
                grpc_send_timeout {STREAM_TIMEOUT};
                grpc_socket_keepalive on;
                # Only a call no replica has received moves to the other: a SubmitJob without an idempotency
                # key that a dying replica took must not start twice.
                grpc_next_upstream error timeout http_502 http_503;
            }}
        """,
    )
    http = _server(
        f"listen {edge.host}:{edge.http_port} ssl http2;",
        tls + applied,
        f"""\
            # Refused by a rate limit: the HTTP API's JSON error shape, with a hint when to come back.
            error_page 429 = @rate_limited;
            location @rate_limited {{
                internal;
                default_type application/json;
                add_header Retry-After 1 always;
                return 429 '{{"error": {{"code": "resource_exhausted", "message": "{RATE_LIMITED}"}}}}';
            }}
            location / {{
                proxy_pass http://$bridge_route;
                proxy_http_version 1.1;
                proxy_set_header Connection "";
                proxy_set_header Host $http_host;
                proxy_set_header X-Forwarded-For $remote_addr;
                proxy_set_header X-Forwarded-Proto https;
                # Server-Sent Events: every event goes out as it arrives, and a quiet stream is not cut.
                proxy_buffering off;
                proxy_request_buffering off;
                proxy_cache off;
                proxy_read_timeout {STREAM_TIMEOUT};
                proxy_send_timeout {STREAM_TIMEOUT};
                proxy_next_upstream error timeout http_502 http_503;
            }}
        """,
    )
    upstreams = [
        _upstream("job_services", edge.host, edge.job_services, 32),
        _upstream("bridges", edge.host, edge.bridges, 256),
        *_bridge_routes(edge),
    ]
    return _main(prefix, "\n".join([limits, *upstreams, grpc, http]))


def balancer_config(prefix: Path, balancer: Balancer) -> str:
    """Plaintext on loopback: one Temporal address (gRPC, HTTP/2 with prior knowledge), one MinIO address
    (presigned URLs are signed for it, so the Host header passes through unchanged), and one JobService
    address for the bridges' HTTP API, which calls it."""
    temporal = textwrap.dedent(
        f"""\
        server {{
            listen {balancer.host}:{balancer.temporal_port} http2;
            client_max_body_size 0;
            location / {{
                grpc_pass grpc://temporal_nodes;
                # Workers' long polls last up to 70 s.
                grpc_read_timeout 5m;
                grpc_send_timeout 5m;
                grpc_socket_keepalive on;
                grpc_next_upstream error timeout http_502 http_503;
            }}
        }}
        """
    )
    minio = textwrap.dedent(
        f"""\
        server {{
            listen {balancer.host}:{balancer.minio_port};
            client_max_body_size 0;
            location / {{
                proxy_pass http://minio_nodes;
                proxy_http_version 1.1;
                proxy_set_header Connection "";
                proxy_set_header Host $http_host;
                proxy_buffering off;
                proxy_request_buffering off;
                proxy_read_timeout 5m;
                proxy_next_upstream error timeout http_502 http_503 http_504;
            }}
        }}
        """
    )
    job_service = textwrap.dedent(
        f"""\
        server {{
            listen {balancer.host}:{balancer.job_service_port} http2;
            client_max_body_size {MAX_BODY};
            location / {{
                grpc_pass grpc://job_services;
                grpc_read_timeout {STREAM_TIMEOUT};
                grpc_send_timeout {STREAM_TIMEOUT};
                grpc_next_upstream error timeout http_502 http_503;
            }}
        }}
        """
    )
    upstreams = [
        _upstream("temporal_nodes", balancer.host, balancer.temporal_nodes, 64),
        _upstream("minio_nodes", balancer.host, balancer.minio_nodes, 64),
        _upstream("job_services", balancer.host, balancer.job_services, 32),
    ]
    return _main(prefix, "\n".join([*upstreams, temporal, minio, job_service]))
