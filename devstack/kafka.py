"""Apache Kafka broker for the local stack: jars from Maven Central, one KRaft node (broker + controller).

    libs = install(cache_root)                      # mvn resolves devstack/kafka/pom.xml, once per version
    props = prepare(libs, data_dir, "127.0.0.1", 9092, 9093)   # writes server.properties, formats once
    argv = command(libs, props)                     # java ... kafka.Kafka server.properties

The broker logs to stdout (devstack/kafka/log4j2.xml) and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

KAFKA_VERSION = "4.4.0"
"""Must equal ``kafka.version`` in devstack/kafka/pom.xml."""

_HERE = Path(__file__).resolve().parent / "kafka"
POM = _HERE / "pom.xml"
LOG4J_CONFIG = _HERE / "log4j2.xml"

# A fixed cluster id (base64url of a UUID, 22 chars, as `kafka-storage.sh random-uuid` prints), so every
# local data dir formats the same way.
CLUSTER_ID = (
    base64.urlsafe_b64encode(uuid.uuid5(uuid.NAMESPACE_URL, "jobstream:devstack:kafka").bytes)
    .decode("ascii")
    .rstrip("=")
)

NODE_ID = 1
DEFAULT_PARTITIONS = 4


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise RuntimeError("java not found on PATH (Kafka needs Java 17+); set JAVA_HOME or install a JDK")
    return found


def _run(argv: list[str], what: str) -> None:
    try:
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise RuntimeError(f"{what} failed: {argv[0]} not found ({' '.join(argv)})") from exc
    except subprocess.CalledProcessError as exc:
        tail = "\n".join((exc.stdout + exc.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"{what} failed (exit {exc.returncode}): {' '.join(argv)}\n{tail}") from exc


def install(cache_root: Path) -> Path:
    """Resolve the broker's jars into ``cache_root/kafka-VERSION/libs`` (once) and return that folder."""
    libs = cache_root / f"kafka-{KAFKA_VERSION}" / "libs"
    if libs.is_dir():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("mvn not found on PATH: Maven resolves the Kafka broker jars from Maven Central")
    libs.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="libs.partial-", dir=libs.parent))
    try:
        _run(
            [
                mvn,
                "-q",
                "-B",
                "-Dstyle.color=never",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={tmp}",
                "-DincludeScope=runtime",
            ],
            "resolving the Kafka broker jars",
        )
        if not any(tmp.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
            raise RuntimeError(f"mvn finished but kafka_2.13-{KAFKA_VERSION}.jar is not in {tmp}")
        tmp.chmod(0o755)  # mkdtemp makes it private
        try:
            tmp.rename(libs)
        except OSError:
            if not libs.is_dir():  # lost a race to another installer only if libs now exists
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return libs


def _classpath(libs: Path) -> str:
    return f"{libs}/*"


def prepare(
    libs: Path,
    data_dir: Path,
    host: str,
    port: int,
    controller_port: int,
    node_id: int = NODE_ID,
    voters: str = "",
    replication: int = 1,
) -> Path:
    """Write ``data_dir/server.properties`` and format the storage unless already formatted.

    One node by default; a cluster's nodes each name the same static `voters` (id@host:controller_port,...)
    and replicate internal topics `replication` times, with a majority of them in sync."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = (data_dir / "kraft-logs").resolve()
    props = data_dir / "server.properties"
    in_sync = replication // 2 + 1
    settings: dict[str, str | int] = {
        "process.roles": "broker,controller",
        "node.id": node_id,
        "controller.quorum.voters": voters or f"{node_id}@{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": DEFAULT_PARTITIONS,
        "auto.create.topics.enable": "true",
        "default.replication.factor": replication,
        "min.insync.replicas": in_sync,
        # A leader is only ever a replica that has every acknowledged record.
        "unclean.leader.election.enable": "false",
        "offsets.topic.replication.factor": replication,
        "offsets.topic.num.partitions": DEFAULT_PARTITIONS,
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": in_sync,
        "transaction.state.log.num.partitions": DEFAULT_PARTITIONS,
        "share.coordinator.state.topic.replication.factor": replication,
        "share.coordinator.state.topic.min.isr": in_sync,
        "share.coordinator.state.topic.num.partitions": DEFAULT_PARTITIONS,
        "group.initial.rebalance.delay.ms": 0,
        # a small broker: fewer threads than the defaults sized for servers
        "num.network.threads": 2,
        "num.io.threads": 4,
        "num.recovery.threads.per.data.dir": 1,
        "background.threads": 4,
        # the log cleaner (compacted internal topics) allocates this on the heap: 128 MiB by default
        "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
    }
    if replication > 1:
        # A dead broker's partitions get new leaders once the controllers stop hearing from it: 9 s by
        # default, for which every producer to those partitions stalls. On one host (no network partitions,
        # no GC pauses of seconds) 3 s is safe.
        settings |= {"broker.session.timeout.ms": 3000, "broker.heartbeat.interval.ms": 1000}
    text = "# written by devstack/kafka.py prepare(); rewritten on every start\n" + "".join(
        f"{key}={value}\n" for key, value in settings.items()
    )
    tmp = props.with_name(props.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(props)

    if not (log_dir / "meta.properties").is_file():
        _run(
            [
                _java(),
                "-Xmx256m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
                "-cp",
                _classpath(libs),
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                CLUSTER_ID,
                "--config",
                str(props),
            ],
            "formatting Kafka storage",
        )
    return props


def _cds_archive(libs: Path, java: str) -> Path:
    """Where this JVM build's class-data-sharing archive of the broker's classes lives."""
    real = Path(java).resolve()
    libjvm = real.parent.parent / "lib" / "server" / "libjvm.so"
    stamp = libjvm.stat() if libjvm.is_file() else real.stat()
    key = hashlib.sha256(f"{real}|{stamp.st_size}|{stamp.st_mtime_ns}".encode()).hexdigest()[:16]
    return libs.parent / "cds" / f"broker-{key}.jsa"


_CDS_DYNAMIC_MAGIC = 0xF00BABA8


def _archive_complete(archive: Path) -> bool:
    try:
        with archive.open("rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return len(head) == 4 and int.from_bytes(head, "little") == _CDS_DYNAMIC_MAGIC


def command(libs: Path, properties: Path, heap_mb: int = 512) -> list[str]:
    """argv that runs the broker in the foreground (role visible in ``ps`` as ``kafka.Kafka``).

    Tuned for a small machine: serial GC, C1 only (the broker's start-up is JIT-bound on 2 cores), and an
    AppCDS archive of the broker's classes that the first run writes when it exits and later runs map.
    Together they take start-to-ready from ~6 s of CPU to ~2 s.
    """
    java = _java()
    archive = _cds_archive(libs, java)
    if archive.is_file() and not _archive_complete(archive):
        archive.unlink(missing_ok=True)  # a dump cut short (the JVM writes the header last): redo it
    if archive.is_file():
        cds = f"-XX:SharedArchiveFile={archive}"
    else:
        archive.parent.mkdir(parents=True, exist_ok=True)
        cds = f"-XX:ArchiveClassesAtExit={archive}"
    return [
        java,
        f"-Xms{min(heap_mb, 64)}m",
        f"-Xmx{heap_mb}m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-XX:MaxMetaspaceSize=192m",
        "-XX:ReservedCodeCacheSize=64m",
        "-XX:+ExitOnOutOfMemoryError",
        cds,
        "-Xlog:cds*=error",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp",
        _classpath(libs),
        "kafka.Kafka",
        str(properties),
    ]
