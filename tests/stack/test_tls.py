"""TLS where jobstream serves: the JobService and the SSE bridge, given a certificate, speak only TLS, and
jobstream's own clients (the bridge's HTTP API calling the JobService, the probes) verify it with the CA
bundle they are given. A set of the processes runs beside the stack with TLS on (devstack/service_set.py);
one job goes through it end to end, over HTTPS and gRPC with TLS only. And the payload store reaches a MinIO
that serves only HTTPS, with a private CA."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import ssl
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import httpx
import pytest
import urllib3
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from devstack import certificates, minio, triton
from devstack import stack as stack_probes
from devstack.provision import provision_store
from devstack.service_set import service_set
from jobstream.connections import job_service_channel
from jobstream.payload_store import PayloadStore
from jobstream.settings import Settings
from tests.stack.sse_client import read_stream
from workers.pipeline.activities.model.triton_vllm import triton_models

NAMESPACE = "jobstream-tls"
PORT_BASE = 18_600
MINIO_TLS_PORT = 18_690
TRITON_TLS_PORTS = (18_680, 18_681, 18_682)  # HTTP, gRPC (TLS), metrics


@pytest.fixture(scope="module")
async def tls_set(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Settings]:
    folder = tmp_path_factory.mktemp("tls")
    certificate = certificates.issue(folder)
    env = {
        "JOBSTREAM_TLS_CERT_FILE": str(certificate.chain),
        "JOBSTREAM_TLS_KEY_FILE": str(certificate.key),
        "JOBSTREAM_SERVER_CA_FILE": str(certificate.ca),
    }
    async with service_set(stack, NAMESPACE, folder / "state", PORT_BASE, env, models=["tinylm"]) as services:
        yield services.settings


async def test_the_job_service_speaks_tls_only(tls_set: Settings) -> None:
    async with job_service_channel(tls_set) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    async with grpc.aio.insecure_channel(tls_set.grpc_target) as plaintext:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health_pb2_grpc.HealthStub(plaintext).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_job_goes_through_https_and_tls_end_to_end(tls_set: Settings, api_key: str) -> None:
    assert tls_set.bridge_url.startswith("https://")
    ca = ssl.create_default_context(cafile=str(tls_set.server_ca_file))
    async with httpx.AsyncClient(verify=ca, timeout=httpx.Timeout(10.0, read=60.0)) as client:
        # The bridge's HTTP API reaches the JobService over TLS, verified with the CA bundle.
        submitted = await client.post(
            f"{tls_set.bridge_url}/v1/jobs",
            json={"prompt": "It is a truth", "params": {"maxTokens": 6, "seed": 7}},
            headers={"authorization": f"Bearer {api_key}"},
        )
        assert submitted.status_code == 202, submitted.text
        events_url = submitted.json()["eventsUrl"]
        assert events_url.startswith("https://")
        events = await read_stream(client, events_url)
    assert events[-1].event == "job.completed"
    assert sum(event.event == "token" for event in events) == 6
    async with httpx.AsyncClient(timeout=5) as unverified:
        with pytest.raises(httpx.ConnectError):  # a client without the CA does not trust it
            await unverified.get(f"{tls_set.bridge_url}/healthz")
    with pytest.raises(httpx.HTTPError):
        async with httpx.AsyncClient(timeout=5) as plaintext:
            await plaintext.get(tls_set.bridge_url.replace("https://", "http://") + "/healthz")


@pytest.fixture(scope="module")
async def minio_over_tls(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Settings]:
    """A second MinIO (the stack's binary) serving only HTTPS with a certificate from a CA of this test."""
    folder = tmp_path_factory.mktemp("minio-tls")
    certs = folder / "certs"  # MinIO's --certs-dir takes these two names
    certificate = certificates.issue(certs, chain_name="public.crt", key_name="private.key")
    settings = stack.model_copy(
        update={
            "minio_port": MINIO_TLS_PORT,
            "minio_secure": True,
            "minio_ca_file": certificate.ca,
            "minio_root_password": secrets.token_urlsafe(24),
            "minio_secret_key": secrets.token_urlsafe(24),
        }
    )
    env = {**os.environ, **minio.environment(settings)}
    argv = [str(minio.install(stack.cache_dir)), "server", str(folder / "data"), "--address", settings.minio_endpoint]
    process = await asyncio.create_subprocess_exec(
        *argv, "--certs-dir", str(certs), "--quiet", env=env, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        ready = stack_probes.http_ok(f"https://{settings.minio_endpoint}/minio/health/live", settings.minio_ca_file)
        for _ in range(100):
            with contextlib.suppress(Exception):
                if await ready(process.pid):
                    break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the MinIO with TLS did not come up")
        yield settings
    finally:
        process.terminate()
        await process.wait()


async def test_the_payload_store_speaks_tls_to_minio(minio_over_tls: Settings) -> None:
    """Provisioning (as root) and the services' user reach MinIO over HTTPS only, verified with the CA bundle;
    the upload form it signs is an https URL that takes the upload."""
    await asyncio.to_thread(provision_store, minio_over_tls)
    store = PayloadStore(minio_over_tls)
    ref = await store.put("stages", b"over TLS")
    assert await store.get(ref) == b"over TLS"
    url, fields = await store.presigned_post("uploads/t/one", timedelta(minutes=5), 1024)
    assert url.startswith("https://")
    ca = ssl.create_default_context(cafile=str(minio_over_tls.minio_ca_file))
    async with httpx.AsyncClient(verify=ca, timeout=10) as client:
        posted = await client.post(url, data=fields, files={"file": ("input", b"uploaded over TLS")})
        assert posted.is_success, posted.text
        plaintext = await client.get(url.replace("https://", "http://"))
        assert plaintext.status_code == 400  # Go's TLS listener: "Client sent an HTTP request to an HTTPS server"
        assert "HTTPS server" in plaintext.text
    assert await store.get(store.ref("uploads/t/one")) == b"uploaded over TLS"
    untrusting = PayloadStore(minio_over_tls.model_copy(update={"minio_ca_file": None}))
    with pytest.raises(urllib3.exceptions.MaxRetryError, match=r"certificate verify failed|CERTIFICATE_VERIFY_FAILED"):
        await untrusting.get(ref)


async def test_the_model_stage_reaches_triton_over_tls(stack: Settings, tmp_path: Path) -> None:
    """A second tritonserver (the stack's build, no model loaded) serving gRPC only over TLS: the model stage's
    Triton client, built from TRITON_SSL and TRITON_CA_FILE, gets its answers; one without the CA does not."""
    certificate = certificates.issue(tmp_path)
    (tmp_path / "models").mkdir()
    venv = Path(sys.prefix)
    backends = triton.install(stack.cache_dir, venv)
    argv = triton.command(venv, backends, tmp_path / "models", "127.0.0.1", *TRITON_TLS_PORTS, [])
    argv += ["--grpc-use-ssl", "true", "--grpc-server-cert", str(certificate.chain)]
    argv += ["--grpc-server-key", str(certificate.key), "--grpc-root-cert", str(certificate.ca)]
    process = await asyncio.create_subprocess_exec(
        *argv, env={**os.environ, **triton.environment(venv)}, stdout=asyncio.subprocess.DEVNULL
    )
    settings = stack.model_copy(
        update={"triton_grpc_port": TRITON_TLS_PORTS[1], "triton_ssl": True, "triton_ca_file": certificate.ca}
    )
    try:
        models = triton_models(settings)
        for _ in range(100):
            with contextlib.suppress(Exception):
                if await models.client.is_server_live():
                    break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("Triton over TLS never answered the model stage's client")
        await models.close()
        untrusting = triton_models(settings.model_copy(update={"triton_ca_file": None}))
        with pytest.raises(InferenceServerException):
            await asyncio.wait_for(untrusting.client.is_server_live(client_timeout=5), 10)
        await untrusting.close()
    finally:
        process.terminate()
        await process.wait()
