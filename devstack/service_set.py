"""jobstream's own processes once more, beside a running stack and sharing its servers (Temporal, Kafka,
MinIO, Triton): in a Temporal namespace of their own, so that only they run the jobs submitted to them, with
ports, a state directory and environment of their own.

The trace test runs one with traces on; `jobstream bench` runs one with metrics off, to measure what the
instrumentation costs next to a set with metrics on."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from devstack import provision, stack
from devstack.supervisor import Child, Supervisor
from jobstream.keys_store import keys_file
from jobstream.settings import Settings
from jobstream.stream_tokens import signing_secret

# Each set's ports: its JobService, its metrics, its bridge, counted from a base well above the stack's.
PORT_FIELDS = (
    "grpc_port",
    "metrics_port",
    "cpu_worker_metrics_port",
    "bridge_port",
    "bridge_metrics_port",
    "gpu_worker_metrics_port",
)


def environment(stack_settings: Settings, namespace: str, state_dir: Path, port_base: int) -> dict[str, str]:
    """The set's JOBSTREAM_* variables: the stack's servers, API keys and stream-token secret (a key and a
    token work against either), its own namespace, state directory and ports."""
    env = {
        "JOBSTREAM_TEMPORAL_NAMESPACE": namespace,
        "JOBSTREAM_STATE_DIR": str(state_dir),
        "JOBSTREAM_API_KEYS_FILE": str(keys_file(stack_settings)),
        "JOBSTREAM_STREAM_TOKEN_SECRET": signing_secret(stack_settings),
    }
    env.update({f"JOBSTREAM_{name.upper()}": str(port_base + index) for index, name in enumerate(PORT_FIELDS)})
    return env


@contextlib.contextmanager
def _environ(extra: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def register_namespace(settings: Settings) -> None:
    """The set's namespace and jobstream's search attributes in it (both idempotent)."""
    client = await Client.connect(settings.temporal_address)
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=settings.temporal_namespace,
                workflow_execution_retention_period=Duration(seconds=24 * 3600),
            )
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.ALREADY_EXISTS:
            raise
    await provision.register_search_attributes(settings)


@dataclass(frozen=True)
class ServiceSet:
    settings: Settings  # what the set's processes read: its namespace, ports and state directory
    supervisor: Supervisor

    def pid(self, role: str) -> int:
        return self.supervisor.pid(role)


@contextlib.asynccontextmanager
async def service_set(
    stack_settings: Settings,
    namespace: str,
    state_dir: Path,
    port_base: int,
    extra_env: dict[str, str],
    models: Sequence[str] | None = None,
) -> AsyncIterator[ServiceSet]:
    """Start the set (JobService, CPU worker, a GPU worker per local model or per one of `models`, bridge);
    stopped, with everything it forked, on the way out. `extra_env` reaches every process."""
    env = {**environment(stack_settings, namespace, state_dir, port_base), **extra_env}
    with _environ(env):
        settings = Settings()
    await register_namespace(settings)
    supervisor = Supervisor(settings.host, settings.logs_dir, say=lambda _: None)
    children: list[Child] = [
        child
        for child in stack.services(settings)
        if models is None or not child.name.startswith("gpu-worker-") or child.name[len("gpu-worker-") :] in models
    ]
    for child in children:
        child.env = {**child.env, **env}
    supervisor.check_ports(children)
    try:
        for child in children:
            await supervisor.start(child)
        yield ServiceSet(settings, supervisor)
    finally:
        await supervisor.stop()
