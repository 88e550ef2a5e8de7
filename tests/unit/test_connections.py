"""Every dependency's client can be secured by settings: Kafka's TLS and SASL, Temporal's TLS and API key
(the SDK's own environment variables), the JobService's TLS."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from jobstream.connections import kafka_options, temporal_connect_options
from jobstream.settings import Settings


def test_kafka_is_plaintext_by_default() -> None:
    assert kafka_options(Settings()) == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}


def test_kafka_sasl_ssl_with_scram() -> None:
    options = kafka_options(
        Settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="jobstream",
            kafka_sasl_password="pw",
        )
    )
    assert options["security_protocol"] == "SASL_SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "jobstream",
        "pw",
    )


def test_temporal_takes_the_sdks_environment_over_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_TLS", "TEMPORAL_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    local = temporal_connect_options(Settings(temporal_namespace="jobs"))
    assert local == {"target_host": "127.0.0.1:7233", "namespace": "jobs"}
    monkeypatch.setenv("TEMPORAL_ADDRESS", "jobstream.a1b2c.tmprl.cloud:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "jobstream.a1b2c")
    monkeypatch.setenv("TEMPORAL_API_KEY", "cloud-key")
    cloud = temporal_connect_options(Settings())
    assert cloud["target_host"] == "jobstream.a1b2c.tmprl.cloud:7233"
    assert cloud["namespace"] == "jobstream.a1b2c"
    assert cloud["api_key"] == "cloud-key"
    assert cloud["tls"]  # an API key implies TLS


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="set both or neither"):
        Settings(tls_cert_file=tmp_path / "cert.pem")
