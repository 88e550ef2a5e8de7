"""What the Helm chart refuses to render: no named Secrets, a secret given inline, SASL or TLS to Triton without
their Secret; and the development secrets it refuses at install."""

from __future__ import annotations

import pytest

from jobstream.settings import DEVELOPMENT_SECRETS
from tests.chart.chart_render import CHART, HELM_BUILD_TIMEOUT_S, SECRETS, of_kind, pod_spec, refusal, render

pytestmark = pytest.mark.timeout(HELM_BUILD_TIMEOUT_S)


def test_without_named_secrets_the_chart_refuses() -> None:
    assert "secrets.streamToken.name" in refusal()


def test_a_secret_given_inline_is_refused() -> None:
    stderr = refusal(SECRETS, **{"settings.STREAM_TOKEN_SECRET": "s3cret-s3cret-s3cret"})
    assert "settings.STREAM_TOKEN_SECRET: a secret is never a value" in stderr


def test_sasl_needs_its_secret() -> None:
    assert "secrets.kafkaSasl.name" in refusal(SECRETS, **{"kafka.securityProtocol": "SASL_SSL"})


def test_tls_to_the_charts_own_triton_needs_its_certificate() -> None:
    assert "secrets.tritonTls.name" in refusal(SECRETS, **{"triton.ssl": "true"})
    (triton,) = [
        obj for obj in of_kind(render("all-features"), "Deployment") if obj["metadata"]["name"].endswith("triton-cpu")
    ]
    (container,) = pod_spec(triton)["containers"]
    assert "--grpc-use-ssl=true" in container["command"]


def test_the_chart_knows_every_development_secret() -> None:
    """At install (`lookup` reads the named Secrets) the chart refuses the secrets this repository publishes;
    the list in the template must follow jobstream.settings."""
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert all(f'"{secret}"' in helpers for secret in DEVELOPMENT_SECRETS)
