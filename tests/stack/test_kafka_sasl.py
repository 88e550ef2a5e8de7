"""Kafka with SASL_SSL and SCRAM, as a managed cluster asks: a second broker (the stack's Kafka build) that
accepts clients only on a SASL_SSL listener, with a certificate from a CA of this test and a SCRAM user. The
event log publishes to it and a consumer reads back, through `kafka_options` alone; a wrong password or a
client without the CA gets nothing."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from devstack import certificates, kafka
from jobstream import cursors
from jobstream.connections import kafka_options
from jobstream.event_log import EventLog, parse_event
from jobstream.settings import Settings
from jobstream.v1.event_pb2 import JobEvent

CLIENT_PORT, CONTROLLER_PORT, INTERNAL_PORT = 18_792, 18_793, 18_794
USER = "jobstream"
MECHANISM = "SCRAM-SHA-512"


def broker_properties(folder: Path, keystore: Path, truststore: Path) -> Path:
    log_dir = folder / "kraft-logs"
    properties = {
        "process.roles": "broker,controller",
        "node.id": kafka.NODE_ID,
        "controller.quorum.voters": f"{kafka.NODE_ID}@127.0.0.1:{CONTROLLER_PORT}",
        "listeners": f"SASL_SSL://127.0.0.1:{CLIENT_PORT},CONTROLLER://127.0.0.1:{CONTROLLER_PORT},"
        f"INTERNAL://127.0.0.1:{INTERNAL_PORT}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{CLIENT_PORT},INTERNAL://127.0.0.1:{INTERNAL_PORT}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "INTERNAL",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms": MECHANISM,
        f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(truststore),
        "log.dirs": str(log_dir),
        "offsets.topic.replication.factor": 1,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        "group.initial.rebalance.delay.ms": 0,
        "num.network.threads": 2,
        "num.io.threads": 2,
        "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
    }
    path = folder / "server.properties"
    path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
    return path


@pytest.fixture(scope="module")
async def sasl_broker(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Settings]:
    folder = tmp_path_factory.mktemp("kafka-sasl")
    certificate = certificates.issue(folder)
    keystore = folder / "keystore.pem"  # Kafka's PEM keystore: the key, then the certificate chain
    keystore.write_bytes(certificate.key.read_bytes() + certificate.chain.read_bytes())
    password = secrets.token_urlsafe(16)
    properties = broker_properties(folder, keystore, certificate.ca)
    libs = kafka.install(stack.cache_dir)
    java = [kafka._java(), "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", f"{libs}/*"]
    formatting = await asyncio.create_subprocess_exec(
        *java,
        f"-Dlog4j2.configurationFile={kafka.LOG4J_CONFIG}",
        "kafka.tools.StorageTool",
        "format",
        "--cluster-id",
        kafka.CLUSTER_ID,
        "--config",
        str(properties),
        "--add-scram",
        f"{MECHANISM}=[name={USER},password={password}]",
        stdout=asyncio.subprocess.DEVNULL,
    )
    assert await formatting.wait() == 0
    log = (folder / "broker.log").open("wb")
    broker = await asyncio.create_subprocess_exec(
        *kafka.command(libs, properties, heap_mb=256), stdout=log, stderr=asyncio.subprocess.STDOUT
    )
    settings = stack.model_copy(
        update={
            "kafka_port": CLIENT_PORT,
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": MECHANISM,
            "kafka_sasl_username": USER,
            "kafka_sasl_password": password,
            "kafka_ca_file": certificate.ca,
            "events_topic": "jobstream.sasl-test",
        }
    )
    try:
        for _ in range(150):
            admin = AIOKafkaAdminClient(**kafka_options(settings), request_timeout_ms=2000)
            try:
                await admin.start()
                await admin.create_topics([NewTopic(settings.events_topic, 1, replication_factor=1)])
                break
            except KafkaError:
                await asyncio.sleep(0.3)
            finally:
                await admin.close()
        else:
            raise AssertionError(f"the SASL_SSL broker did not come up:\n{(folder / 'broker.log').read_text()[-3000:]}")
        yield settings
    finally:
        if broker.returncode is None:
            broker.terminate()
        await broker.wait()
        log.close()


async def test_the_event_log_publishes_and_reads_over_sasl_ssl(sasl_broker: Settings) -> None:
    log = EventLog(sasl_broker)
    await log.start()
    try:
        event = JobEvent(job_id="job_" + "s" * 26, id=cursors.job_started(), type="job.started")
        located = await log.publish(event)
    finally:
        await log.stop()
    consumer = AIOKafkaConsumer(**kafka_options(sasl_broker), enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(sasl_broker.events_topic, located.partition)
        consumer.assign([tp])
        consumer.seek(tp, located.offset)
        record = await asyncio.wait_for(consumer.getone(tp), 30)
    finally:
        await consumer.stop()
    assert parse_event(record.value or b"") == event


@pytest.mark.parametrize("wrong", ["password", "ca"])
async def test_a_wrong_password_or_an_untrusted_certificate_gets_nothing(sasl_broker: Settings, wrong: str) -> None:
    changed: dict[str, object] = (
        {"kafka_sasl_password": "not-the-password"} if wrong == "password" else {"kafka_ca_file": None}
    )
    log = EventLog(sasl_broker.model_copy(update=changed))
    with pytest.raises(KafkaError):
        await asyncio.wait_for(log.start(), 30)
    await log.stop()
