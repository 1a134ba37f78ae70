"""The embedded local broker — Apache Kafka itself, single-node KRaft — and topic management.

The broker is the same software the region runs: Apache Kafka's own jars (pinned in
``deploy/kafka/pom.xml``, fetched from Maven Central by ``make setup`` into
:func:`kafka_libs`), started as one JVM that is both broker and controller. It keeps its
log in a data directory: ``.zhijian/kafka`` for ``zhijian broker`` and the demo (a restart
keeps topics, records and committed offsets), an ephemeral temporary directory for tests,
``evaluate`` and ``bench`` (removed at stop). The directory is formatted on first start.

Security a region would turn on runs here too (:class:`BrokerSecurity`): SASL/SCRAM on the
client listener, optionally TLS with a generated self-signed certificate, and ACLs that give
each principal only what its role needs (:func:`role_acls`).
"""
from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType, KafkaAdminClient,
                         NewTopic, ResourcePattern, ResourcePatternFilter, ResourceType)
from kafka.errors import (KafkaError, KafkaTimeoutError, LeaderNotAvailableError, NodeNotReadyError, NotControllerError,
                          RequestTimedOutError, TopicAlreadyExistsError, UnknownBrokerIdError)

from connectors.errors import BrokerError
from connectors.kafka.connection import KafkaConnection
from connectors.kafka.topics import TopicSpec

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The one Apache Kafka version of the project: the POM, the embedded broker and docker-compose agree
#: (tests/test_broker_setup.py checks). 3.9.x still serves every protocol version aiokafka (Faust),
#: kafka-python and Debian's kcat (librdkafka 2.0) send; 4.x removed the old ones (KIP-896).
KAFKA_VERSION = "3.9.1"
#: Java the broker needs: Kafka 3.9 deprecates 11 for brokers and 4.x requires 17; 17 is what set-up installs.
MIN_JAVA = 17
LIBS_ENV = "ZHIJIAN_KAFKA_LIBS"
HEAP_ENV = "ZHIJIAN_BROKER_HEAP_MB"
JVM_OPTS_ENV = "ZHIJIAN_BROKER_JVM_OPTS"
#: The JVM flags of the embedded broker (``$ZHIJIAN_BROKER_JVM_OPTS`` replaces them). It shares two cores with
#: the worker and the producers, and lives minutes (tests, demo): C2 compilation and G1's threads would take CPU
#: from them. Measured with ``zhijian bench`` on the 2-core machine, against the JVM defaults: 25 % less CPU in
#: the whole run, p50 event-to-alert 0.011 s instead of 0.39 s, worker throughput +16 %.
DEFAULT_JVM_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
DEFAULT_HEAP_MB = 512
SETUP_HINT = "run `make setup` (it installs a JDK and Maven where missing and fetches the broker's jars)"


def kafka_libs() -> Path:
    """Folder of the broker's jars: ``$ZHIJIAN_KAFKA_LIBS``, else
    ``${XDG_CACHE_HOME:-~/.cache}/zhijian/kafka-<version>/lib`` (where ``make setup`` puts them)."""
    explicit = os.environ.get(LIBS_ENV)
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "zhijian" / f"kafka-{KAFKA_VERSION}" / "lib"


def find_java() -> str:
    """The ``java`` to run the broker with ($JAVA_HOME/bin/java, else the PATH's), checked for version."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").is_file() else shutil.which("java")
    if not java:
        raise BrokerError(f"Java is not installed (the embedded Kafka broker needs Java {MIN_JAVA}+): {SETUP_HINT}")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BrokerError(f"{java} -version failed ({e}): install Java {MIN_JAVA}+ or set JAVA_HOME") from None
    major = java_major(out)
    if major is None or major < MIN_JAVA:
        raise BrokerError(f"{java} is Java {major or 'of unknown version'}; the embedded Kafka broker needs Java "
                          f"{MIN_JAVA}+: {SETUP_HINT}, or set JAVA_HOME to a JDK {MIN_JAVA}+")
    return java


def java_major(version_output: str) -> int | None:
    """The major version in ``java -version``'s output.

    >>> java_major('openjdk version "17.0.15" 2025-04-15')
    17
    >>> java_major('java version "1.8.0_392"')
    8
    >>> java_major('nothing here') is None
    True
    """
    m = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def check_libs() -> Path:
    libs = kafka_libs()
    if not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
        raise BrokerError(f"the Apache Kafka {KAFKA_VERSION} jars are not in {libs}: {SETUP_HINT} "
                          f"(or set {LIBS_ENV} to a folder holding them)")
    return libs


class PortTaken(BrokerError):
    """A port chosen free was taken by another process before the broker's JVM bound it."""


#: Times a broker (or a cluster) whose ports were chosen for it is started on fresh ones after a port was taken.
PORT_ATTEMPTS = 3


def on_fresh_ports(start: Callable[[], T], forget_ports: Callable[[], None], what: str) -> T:
    """``start()``, and after a :class:`PortTaken` ``forget_ports()`` and ``start()`` again, up to
    :data:`PORT_ATTEMPTS` times in all (the last one's error is raised)."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            return start()
        except PortTaken as e:
            if attempt == PORT_ATTEMPTS:
                raise
            log.warning("%s; starting %s again on fresh ports", e, what)
            forget_ports()
    raise AssertionError("not reached")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_until_answers(conn: KafkaConnection, timeout: float = 30.0) -> None:
    """Block until the cluster answers a metadata request, or raise BrokerError."""

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(**conn.kafka_python(), request_timeout_ms=5000,
                                     bootstrap_timeout_ms=int(max(0.5, deadline - time.monotonic()) * 1000))
            try:
                admin.describe_cluster()
            finally:
                admin.close()
            return
        except (KafkaError, OSError, ValueError) as e:
            last = e
            time.sleep(0.2)
    raise BrokerError(
        f"Kafka at {conn.bootstrap_servers} is unreachable ({last}); start the broker "
        "or set ZHIJIAN_BOOTSTRAP_SERVERS / --bootstrap-servers to a reachable one"
    )


#: State changelogs are compacted; the log cleaner only compacts closed segments, and a restore reads every record
#: still there, so segments close after an hour or 64 MiB instead of Kafka's week or 1 GiB.
CHANGELOG_CONFIG = {"cleanup.policy": "compact", "segment.ms": str(3600 * 1000), "segment.bytes": str(64 * 1024 * 1024),
                    "min.cleanable.dirty.ratio": "0.2"}


#: errors of a cluster that has just started (or lost its controller) which a moment later go away
TRANSIENT = (UnknownBrokerIdError, NotControllerError, NodeNotReadyError, RequestTimedOutError, KafkaTimeoutError,
             LeaderNotAvailableError)


def ensure_topics(conn: KafkaConnection, specs: list[TopicSpec], replication_factor: int = 1) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Replicated three or more times, a topic
    takes a write only when all but one of its replicas have it (``min.insync.replicas``: with producers'
    ``acks=all``, a record acknowledged survives the loss of any one broker)."""

    durable = {"min.insync.replicas": str(replication_factor - 1)} if replication_factor >= 3 else {}
    created: list[str] | None = None
    deadline = time.monotonic() + 60.0
    while True:
        admin = KafkaAdminClient(**conn.kafka_python(), request_timeout_ms=15000)
        try:
            existing = set(admin.list_topics())
            missing = [s for s in specs if s.name not in existing]
            if created is None:
                created = [s.name for s in missing]
            if missing:
                admin.create_topics([NewTopic(s.name, s.partitions, replication_factor,
                                              topic_configs={**(CHANGELOG_CONFIG if s.compacted else {}), **durable})
                                     for s in missing])
            break
        except TopicAlreadyExistsError:
            break  # another process won the race
        except TRANSIENT as e:  # a cluster just started: its controller not yet known to the node asked
            if time.monotonic() > deadline:
                raise BrokerError(f"Kafka at {conn.bootstrap_servers} could not create the topics: {e}") from None
            time.sleep(0.5)
        finally:
            admin.close()
    if created:
        wait_for_topics(conn, created)
    return created or []


def wait_for_topics(conn: KafkaConnection, names: list[str], timeout_s: float = 60.0) -> None:
    """Wait until every node of ``conn`` answers for the topics with a leader for each partition: a topic created a
    moment ago is known to the controller first, and a client asking another node of a cluster would be told it
    does not exist (UNKNOWN_TOPIC_OR_PARTITION). Raises :class:`BrokerError` naming the topics still unknown."""
    deadline = time.monotonic() + timeout_s
    for server in conn.servers:
        admin = KafkaAdminClient(**{**conn.kafka_python(), "bootstrap_servers": [server]}, request_timeout_ms=15000)
        try:
            while True:
                try:
                    unknown = [t["name"] for t in admin.describe_topics(names) if t["error_code"] or not t["partitions"]
                               or any(p["leader_id"] < 0 for p in t["partitions"])]
                except KafkaError:  # the node is not ready to answer yet
                    unknown = names
                if not unknown:
                    break
                if time.monotonic() > deadline:
                    raise BrokerError(f"Kafka at {server} does not know the topics {', '.join(unknown)} "
                                      f"{timeout_s:.0f} s after they were created; see the broker's log")
                time.sleep(0.2)
        finally:
            admin.close()


# --------------------------------------------------------------------------------------------- security

#: The principals of a secured broker and what each is for (ACLs in :func:`role_acls`).
ROLES = {
    "admin": "super user: administers the cluster and alone reads the dead-letter topic (raw records)",
    "worker": "the zhijian worker: reads the input topics, writes alerts and dead letters",
    "ingest": "connectors (hospitals, replay, the simulator): write the input topics only",
    "analyst": "the analysts' tools: read the alerts topic only",
}


@dataclass
class BrokerSecurity:
    """SASL/SCRAM-SHA-512 on the client listener (TLS too when ``tls``), ACLs on, one user per role.

    Passwords are generated on first start and kept with the certificate in the data directory
    (``security/``, mode 0700); :meth:`EmbeddedBroker.connection_for` gives each role's settings and
    ``zhijian broker --security`` writes them as ``--config`` files.
    """

    tls: bool = False
    mechanism: str = "SCRAM-SHA-512"
    passwords: dict[str, str] = field(default_factory=dict)
    cafile: str | None = None

    @property
    def protocol(self) -> str:
        return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"


def role_acls(prefix: str, app_id: str, input_topics: list[str]) -> list[tuple[str, str, str, str, str]]:
    """(principal, resource type, pattern type, resource name, operation) rows to allow; nothing else is.
    ``input_topics`` are the topics ingest writes and the worker reads: the event streams and the reference
    topics (inventory, beneficiaries).

    >>> rows = role_acls("zhijian.", "zhijian", ["zhijian.claims"])
    >>> ("User:analyst", "TOPIC", "LITERAL", "zhijian.alerts", "READ") in rows
    True
    >>> any(r[0] == "User:analyst" and r[3] == "zhijian.deadletter" for r in rows)
    False
    >>> ("User:analyst", "TOPIC", "LITERAL", "zhijian.case-events", "WRITE") in rows   # the workbench's case changes
    True
    """
    alerts, dead = f"{prefix}alerts", f"{prefix}deadletter"
    rows = []
    for topic in input_topics:
        rows += [("User:worker", "TOPIC", "LITERAL", topic, "READ"),
                 ("User:ingest", "TOPIC", "LITERAL", topic, "WRITE")]
    rows += [
        ("User:worker", "TOPIC", "LITERAL", alerts, "WRITE"),
        ("User:worker", "TOPIC", "LITERAL", dead, "WRITE"),
        ("User:ingest", "TOPIC", "LITERAL", dead, "WRITE"),  # replay sends the rows its mapping refuses
        # Faust's own topics (leader election, changelogs, repartitions) start with the app id
        ("User:worker", "TOPIC", "PREFIXED", f"{app_id}-", "ALL"),
        ("User:worker", "GROUP", "LITERAL", app_id, "READ"),
        # the checkpoint writes the changelogs in transactions of its own producer (<app id>-checkpoint-…)
        ("User:worker", "TRANSACTIONAL_ID", "PREFIXED", f"{app_id}-", "ALL"),
        ("User:analyst", "TOPIC", "LITERAL", alerts, "READ"),
        # the workbench follows the watch lists and its supervisors edit them
        ("User:analyst", "TOPIC", "LITERAL", f"{prefix}watchlist", "READ"),
        ("User:analyst", "TOPIC", "LITERAL", f"{prefix}watchlist", "WRITE"),
        # the workbench writes every change of a case, and a case closed as fraud or violation as a finding; it
        # shows the institutions' scores
        ("User:analyst", "TOPIC", "LITERAL", f"{prefix}case-events", "WRITE"),
        ("User:analyst", "TOPIC", "LITERAL", f"{prefix}institution-verdicts", "WRITE"),
        ("User:analyst", "TOPIC", "LITERAL", f"{prefix}institution-scores", "READ"),
        ("User:analyst", "GROUP", "PREFIXED", "analyst", "READ"),
    ]
    return rows


def apply_acls(conn: KafkaConnection, rows: list[tuple[str, str, str, str, str]], timeout: float = 30.0) -> None:
    """Create the ACLs and wait until the broker enforces them (KRaft applies them from its metadata log a
    moment after the controller accepted them: a client that comes at once could be refused)."""

    admin = KafkaAdminClient(**conn.kafka_python(), request_timeout_ms=15000)
    try:
        acls = [ACL(principal, "*", ACLOperation[op], ACLPermissionType.ALLOW,
                    ResourcePattern(ResourceType[rtype], name, ACLResourcePatternType[ptype]))
                for principal, rtype, ptype, name, op in rows]
        result = admin.create_acls(acls)
        if result.get("failed"):
            raise BrokerError(f"could not create ACLs: {result['failed'][0]}")
        every = ACLFilter(principal=None, host="*", operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
                          resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
        deadline = time.monotonic() + timeout
        while len(admin.describe_acls(every)[0]) < len(acls):
            if time.monotonic() > deadline:
                raise BrokerError(f"the broker did not apply its ACLs within {timeout:g} s")
            time.sleep(0.1)
    finally:
        admin.close()


def _self_signed(java: str, folder: Path, password: str) -> tuple[Path, Path]:
    """A PKCS12 keystore with a self-signed certificate for localhost/127.0.0.1, and its PEM."""
    keytool = Path(java).resolve().parent / "keytool"
    store, pem = folder / "broker.p12", folder / "ca.pem"
    if not store.exists():
        subprocess.run([str(keytool), "-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048",
                        "-validity", "825", "-dname", "CN=localhost, O=zhijian embedded broker",
                        "-ext", "SAN=dns:localhost,ip:127.0.0.1", "-keystore", str(store), "-storetype", "PKCS12",
                        "-storepass", password, "-keypass", password], check=True, capture_output=True, timeout=60)
        subprocess.run([str(keytool), "-exportcert", "-alias", "broker", "-rfc", "-keystore", str(store),
                        "-storepass", password, "-file", str(pem)], check=True, capture_output=True, timeout=60)
    return store, pem


def _jaas(module: str, user: str, password: str, extra: str = "") -> str:
    return f'{module} required username="{user}" password="{password}"{extra};'


# --------------------------------------------------------------------------------------------- the broker

def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, not starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


class EmbeddedBroker:
    """Apache Kafka (KRaft, combined broker and controller) on 127.0.0.1, as a context manager.

    ``data_dir=None`` keeps the log in a temporary directory removed at stop; a given folder is
    formatted on first start and reused after. ``port=None`` takes a free port.

    >>> with EmbeddedBroker() as b:          # doctest: +SKIP
    ...     print(b.bootstrap_servers)
    127.0.0.1:40163
    """

    def __init__(self, port: int | None = None, log_path: str | Path | None = None,
                 data_dir: str | Path | None = None, security: BrokerSecurity | None = None,
                 heap_mb: int | None = None, default_partitions: int = 4, node_id: int = 1,
                 quorum: dict[int, int] | None = None, cluster_id: str | None = None,
                 properties: dict[str, str] | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port
        # a member of a cluster (connectors.kafka.cluster): its node id, every controller's (id → port), the
        # cluster's id and the cluster-wide settings; alone, node 1 is its own quorum
        self.node_id = node_id
        self.quorum = quorum
        self.cluster_id = cluster_id
        self.properties = properties or {}
        self.controller_port: int | None = quorum[node_id] if quorum else None
        self.data_dir = Path(data_dir) if data_dir else None
        self.ephemeral = data_dir is None
        self.log_path = Path(log_path) if log_path else None
        self.security = security
        self.heap_mb = heap_mb or int(os.environ.get(HEAP_ENV, DEFAULT_HEAP_MB))
        self.default_partitions = default_partitions
        self.formatted_now = False
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connection(self) -> KafkaConnection:
        """How the administrator connects (the super user when security is on)."""
        return self.connection_for("admin")

    def connection_for(self, role: str) -> KafkaConnection:
        if self.security is None:
            return KafkaConnection(self.bootstrap_servers)
        return KafkaConnection(self.bootstrap_servers, self.security.protocol, self.security.mechanism,
                               role, self.security.passwords[role], self.security.cafile)

    # -- files

    @property
    def pid_file(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir / "broker.pid"

    def owner(self) -> tuple[int, str] | None:
        """(pid, port) of an embedded broker already running on this data directory, or None."""
        if self.data_dir is None:
            return None
        try:
            pid_s, _, port = self.pid_file.read_text().partition(" ")
            pid = int(pid_s)
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and b"kafka.Kafka" not in cmdline.read_bytes():
            return None  # a stale pid file whose number was reused
        return pid, port.strip()

    def _check_not_running(self) -> None:
        """One broker per data directory: a second would fail on Kafka's lock with a stack trace."""
        owner = self.owner()
        if owner is not None:
            pid, port = owner
            raise BrokerError(f"an embedded broker (pid {pid}) already runs on {self.data_dir} at 127.0.0.1:{port}: "
                              f"use it (--bootstrap-servers 127.0.0.1:{port}) or stop it (kill {pid})")

    def _properties(self) -> str:
        assert self.data_dir is not None
        logs = self.data_dir / "log"
        sec = self.security
        lines = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": ",".join(f"{n}@{self.host}:{p}" for n, p in
                                                 (self.quorum or {self.node_id: self.controller_port}).items()),
            "controller.listener.names": "CONTROLLER",
            "listeners": f"CLIENT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"CLIENT://{self.host}:{self.port}",
            "inter.broker.listener.name": "CLIENT",
            "log.dirs": str(logs),
            "num.partitions": str(self.default_partitions),
            # one small machine: no replicas, no waiting for more members before the first rebalance
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            # a killed worker's open checkpoint transaction blocks the restore of its changelog partitions until
            # the broker aborts it: look for timed-out transactions every second, not every ten
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",  # as on the region's cluster: topics are declared
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "log.retention.hours": "168",
            "log.retention.bytes": str(1024 * 1024 * 1024),  # a cap per partition for a laptop's disk
            **self.properties,
        }
        if sec is None:
            lines["listener.security.protocol.map"] = "CLIENT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        else:
            admin = sec.passwords["admin"]
            lines.update({
                "listener.security.protocol.map": f"CLIENT:{sec.protocol},CONTROLLER:SASL_PLAINTEXT",
                # clients and the broker itself authenticate with SCRAM (users live in the cluster metadata)
                "listener.name.client.sasl.enabled.mechanisms": sec.mechanism,
                "sasl.mechanism.inter.broker.protocol": sec.mechanism,
                f"listener.name.client.{sec.mechanism.lower()}.sasl.jaas.config":
                    _jaas("org.apache.kafka.common.security.scram.ScramLoginModule", "admin", admin),
                # the controller listener cannot use SCRAM (its users are in the metadata it serves): PLAIN
                "sasl.mechanism.controller.protocol": "PLAIN",
                "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
                "listener.name.controller.plain.sasl.jaas.config":
                    _jaas("org.apache.kafka.common.security.plain.PlainLoginModule", "admin", admin,
                          f' user_admin="{admin}"'),
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users": "User:admin",
                "allow.everyone.if.no.acl.found": "false",
            })
            if sec.tls:
                store = self.data_dir / "security" / "broker.p12"
                lines.update({
                    "ssl.keystore.type": "PKCS12",
                    "ssl.keystore.location": str(store),
                    "ssl.keystore.password": sec.passwords["keystore"],
                    "ssl.key.password": sec.passwords["keystore"],
                    "ssl.endpoint.identification.algorithm": "https",
                    "ssl.truststore.type": "PEM",
                    "ssl.truststore.location": str(self.data_dir / "security" / "ca.pem"),
                })
        return "".join(f"{k}={v}\n" for k, v in lines.items())

    def _log4j(self) -> str:
        target = self.log_path or (self.data_dir / "broker.log")  # type: ignore[operator]
        return ("log4j.rootLogger=INFO, file\n"
                "log4j.logger.kafka.request.logger=WARN\n"
                "log4j.logger.org.apache.kafka.clients.NetworkClient=WARN\n"
                "log4j.appender.file=org.apache.log4j.FileAppender\n"
                f"log4j.appender.file.File={target}\n"
                "log4j.appender.file.Append=true\n"
                "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
                "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n")

    def _prepare_security(self, java: str) -> None:
        sec = self.security
        assert sec is not None and self.data_dir is not None
        folder = self.data_dir / "security"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        stored = folder / "passwords"
        if stored.exists():
            sec.passwords = dict(line.split("=", 1) for line in stored.read_text().split())
        else:
            sec.passwords = {role: secrets.token_urlsafe(18) for role in (*ROLES, "keystore")}
            stored.touch(mode=0o600)
            stored.write_text("".join(f"{k}={v}\n" for k, v in sec.passwords.items()))
        if sec.tls:
            _, pem = _self_signed(java, folder, sec.passwords["keystore"])
            sec.cafile = str(pem)

    def _format(self, java: str, classpath: str, props: Path) -> None:
        cmd = [java, f"-Xmx{min(self.heap_mb, 256)}m", *os.environ.get(JVM_OPTS_ENV, DEFAULT_JVM_OPTS).split(), f"-Dlog4j.configuration=file:{self.data_dir}/log4j.properties",
               "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", self.cluster_id or _cluster_id(), "-c", str(props)]
        if self.security is not None:
            for role in ROLES:
                cmd += ["--add-scram", f"{self.security.mechanism}=[name={role},password={self.security.passwords[role]}]"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise BrokerError(f"formatting the broker's storage in {self.data_dir} failed: "
                              f"{(r.stderr or r.stdout).strip().splitlines()[-1:]}; remove the folder to start afresh")
        self.formatted_now = True

    # -- life cycle

    def start(self, timeout: float = 90.0, wait: bool = True) -> "EmbeddedBroker":
        """Start the JVM and (``wait``) wait until it answers; a cluster's members are launched first and waited
        for after (a KRaft quorum answers once a majority runs). A broker alone whose ports were chosen here is
        started again on fresh ones, up to :data:`PORT_ATTEMPTS` times, when another process took one of them
        between the choice and the JVM's bind (:class:`PortTaken`: tests and lab runs start many side by side)."""
        if self.port is not None or self.quorum is not None or not wait:  # ports given, or waited for elsewhere
            return self._start(timeout, wait)
        return on_fresh_ports(lambda: self._start(timeout, wait), lambda: setattr(self, "port", None), "the broker")

    def _start(self, timeout: float, wait: bool) -> "EmbeddedBroker":
        java = find_java()
        libs = check_libs()
        if self.port is not None and not port_is_free(self.port, self.host):
            raise BrokerError(f"port {self.port} on {self.host} is taken (another broker?): stop what listens there "
                              "or pass another --port")
        if self.ephemeral and self.data_dir is None:  # a killed member restarts on the data it had
            self.data_dir = Path(tempfile.mkdtemp(prefix="zhijian-kafka-"))
        assert self.data_dir is not None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._check_not_running()
        self.port = self.port or free_port(self.host)
        if self.quorum is None:
            self.controller_port = free_port(self.host)
        if self.security is not None:
            self._prepare_security(java)
        props = self.data_dir / "server.properties"
        props.touch(mode=0o600)  # it holds passwords when security is on
        props.write_text(self._properties())
        (self.data_dir / "log4j.properties").write_text(self._log4j())
        classpath = f"{libs}/*"
        if not (self.data_dir / "log" / "meta.properties").exists():
            self._format(java, classpath, props)
        cmd = [java, f"-Xms{min(128, self.heap_mb)}m", f"-Xmx{self.heap_mb}m", "-XX:+ExitOnOutOfMemoryError",
               *os.environ.get(JVM_OPTS_ENV, DEFAULT_JVM_OPTS).split(),
               "-Djava.awt.headless=true", f"-Dlog4j.configuration=file:{self.data_dir}/log4j.properties",
               "-cp", classpath, "kafka.Kafka", str(props)]
        out = open(self.data_dir / "broker.out", "ab")
        try:
            self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        finally:
            out.close()
        self.pid_file.write_text(f"{self._proc.pid} {self.port}\n")
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until the client port accepts and the broker answers a DescribeCluster request."""
        assert self._proc is not None and self.data_dir is not None
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    said = ""
                    for path in (self.log_path or self.data_dir / "broker.log", self.data_dir / "broker.out"):
                        with contextlib.suppress(OSError):
                            said += Path(path).read_text(errors="replace")[-20_000:]
                    if "Address already in use" in said:  # read before stop() removes an ephemeral folder
                        raise PortTaken(f"a port of the embedded broker (client {self.port}, controller "
                                        f"{self.controller_port}) was taken by another process as it started: "
                                        "start it again, or pass another --port")
                    raise BrokerError(f"the embedded broker exited at start (code {self._proc.returncode}); see "
                                      f"{self.log_path or self.data_dir / 'broker.log'} and {self.data_dir / 'broker.out'}")
                try:
                    with socket.create_connection((self.host, self.port), timeout=0.5):
                        break
                except OSError:
                    time.sleep(0.1)
            wait_until_answers(self.connection, timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        log.info("embedded Kafka %s ready on %s (data in %s)", KAFKA_VERSION, self.bootstrap_servers, self.data_dir)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (Kafka's controlled shutdown), then SIGKILL after ``timeout`` seconds."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("the embedded broker did not stop in %g s; killing it", timeout)
                proc.kill()
                proc.wait()
        if proc is not None and self.data_dir is not None:
            self.pid_file.unlink(missing_ok=True)
        if self.ephemeral and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def kill(self) -> None:
        """SIGKILL, as a crash would (tests); the data directory stays."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
