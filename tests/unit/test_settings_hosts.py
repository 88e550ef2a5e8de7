"""jobstream/settings.py: one HOST for the local stack, split per server where the servers live apart."""

from __future__ import annotations

import pytest

from jobstream.settings import Settings

SERVER_PORTS = {
    "JOBSTREAM_TEMPORAL_PORT": "7233",
    "JOBSTREAM_KAFKA_PORT": "9092",
    "JOBSTREAM_MINIO_PORT": "9000",
    "JOBSTREAM_TRITON_GRPC_PORT": "8001",
    "JOBSTREAM_GRPC_PORT": "50051",
    "JOBSTREAM_BRIDGE_PORT": "8080",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The default ports whatever the calling shell exports (the test run may use another stack's)."""
    for name, value in SERVER_PORTS.items():
        monkeypatch.setenv(name, value)
    for name in (
        "HOST",
        "BIND_HOST",
        "TEMPORAL_HOST",
        "KAFKA_HOST",
        "MINIO_HOST",
        "TRITON_HOST",
        "PUBLIC_BRIDGE_URL",
        "KAFKA_SERVERS",
    ):
        monkeypatch.delenv(f"JOBSTREAM_{name}", raising=False)
    return monkeypatch


def addresses(settings: Settings) -> tuple[str, ...]:
    return (
        settings.temporal_address,
        settings.kafka_bootstrap,
        settings.minio_endpoint,
        settings.triton_grpc_url,
        settings.grpc_target,
        settings.bind_address,
        settings.bridge_url,
    )


def test_defaults_are_the_local_stack(env: pytest.MonkeyPatch) -> None:
    assert addresses(Settings()) == (
        "127.0.0.1:7233",
        "127.0.0.1:9092",
        "127.0.0.1:9000",
        "127.0.0.1:8001",
        "127.0.0.1:50051",
        "127.0.0.1",
        "http://127.0.0.1:8080",
    )


def test_one_host_moves_everything(env: pytest.MonkeyPatch) -> None:
    env.setenv("JOBSTREAM_HOST", "10.0.0.5")
    assert addresses(Settings()) == (
        "10.0.0.5:7233",
        "10.0.0.5:9092",
        "10.0.0.5:9000",
        "10.0.0.5:8001",
        "10.0.0.5:50051",
        "10.0.0.5",
        "http://10.0.0.5:8080",
    )


def test_servers_apart_bind_everywhere(env: pytest.MonkeyPatch) -> None:
    """docker-compose: bind 0.0.0.0, reach each server by its service name, and the JobService locally."""
    for name, value in {
        "BIND_HOST": "0.0.0.0",
        "TEMPORAL_HOST": "temporal",
        "KAFKA_HOST": "kafka",
        "MINIO_HOST": "minio",
        "TRITON_HOST": "triton",
    }.items():
        env.setenv(f"JOBSTREAM_{name}", value)
    assert addresses(Settings()) == (
        "temporal:7233",
        "kafka:9092",
        "minio:9000",
        "triton:8001",
        "127.0.0.1:50051",
        "0.0.0.0",
        "http://127.0.0.1:8080",
    )


def test_a_kafka_cluster_is_a_list_of_servers(env: pytest.MonkeyPatch) -> None:
    env.setenv("JOBSTREAM_KAFKA_SERVERS", " 127.0.0.1:19092, 127.0.0.1:19093 ,127.0.0.1:19094")
    assert Settings().kafka_bootstrap == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"


@pytest.mark.parametrize("servers", ["127.0.0.1", "127.0.0.1:9092,", ":9092", "kafka:port", "kafka:70000"])
def test_a_kafka_server_list_with_a_bad_entry_is_refused_naming_it(env: pytest.MonkeyPatch, servers: str) -> None:
    env.setenv("JOBSTREAM_KAFKA_SERVERS", servers)
    with pytest.raises(ValueError, match="is not host:port"):
        Settings()
