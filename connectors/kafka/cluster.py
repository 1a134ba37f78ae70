"""A local Apache Kafka cluster 集群: three (or more) KRaft nodes on 127.0.0.1, from the same jars as the embedded
broker — what a region runs, small enough to kill a broker of it in a test.

Every node is both broker and controller, so the controller quorum and the partition replicas both survive the
loss of any one node. The cluster's settings are the region's: replication factor 3 for every topic (the
project's, Faust's, the offsets and transaction logs), ``min.insync.replicas = 2`` so that a write acknowledged
with ``acks=all`` is on two brokers at least, and unclean leader election off.

>>> with EmbeddedCluster(3) as c:                  # doctest: +SKIP
...     c.bootstrap_servers, c.controller()
('127.0.0.1:40163,127.0.0.1:40165,127.0.0.1:40167', 2)
"""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from kafka import KafkaAdminClient

from connectors.kafka.broker import BrokerError, EmbeddedBroker, _cluster_id, ensure_topics, free_port, on_fresh_ports
from connectors.kafka.connection import KafkaConnection
from connectors.kafka.topics import TopicSpec

log = logging.getLogger(__name__)

#: How a KRaft node logs its place in the controller quorum (org.apache.kafka.raft.QuorumState)
_TRANSITION = re.compile(r"Completed transition to (\w+)\((.*?)\)")


def replication_factor(nodes: int) -> int:
    """Three copies of every partition, or one per node on a smaller cluster."""
    return min(3, nodes)


def cluster_properties(nodes: int) -> dict[str, str]:
    """The settings every node of an ``nodes``-node cluster shares."""
    rf = replication_factor(nodes)
    isr = str(max(1, rf - 1))
    return {
        "default.replication.factor": str(rf),
        "min.insync.replicas": isr,
        "offsets.topic.replication.factor": str(rf),
        "transaction.state.log.replication.factor": str(rf),
        "transaction.state.log.min.isr": isr,
        "unclean.leader.election.enable": "false",
        # a killed node is noticed by the controller within a few seconds, not 9 (the heartbeat timeout)
        "broker.session.timeout.ms": "6000",
        "broker.heartbeat.interval.ms": "1000",
    }


class EmbeddedCluster:
    """``nodes`` Apache Kafka nodes (KRaft, each broker and controller) as one cluster on 127.0.0.1; a context
    manager. Ephemeral: each node's log lives in a temporary folder, kept while a node is killed and restarted
    (:meth:`kill`, :meth:`restart`), removed at :meth:`stop`."""

    def __init__(self, nodes: int = 3, log_dir: str | Path | None = None, heap_mb: int | None = None,
                 default_partitions: int = 4, base_port: int | None = None) -> None:
        if nodes < 1:
            raise BrokerError("a cluster needs at least one node")
        self.log_dir = Path(log_dir) if log_dir else None
        self.heap_mb = heap_mb
        self.default_partitions = default_partitions
        self.n = nodes
        self.base_port = base_port  # clients on base_port, base_port + 1, …; free ports when None
        self.nodes: dict[int, EmbeddedBroker] = {}

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(b.bootstrap_servers for b in self.nodes.values())

    @property
    def connection(self) -> KafkaConnection:
        return KafkaConnection(self.bootstrap_servers)

    @property
    def replication_factor(self) -> int:
        return replication_factor(self.n)

    def ensure_topics(self, specs: list[TopicSpec]) -> None:
        """Create the topics at the cluster's replication factor and wait until every node knows their leaders."""
        ensure_topics(self.connection, specs, self.replication_factor)
        self.wait_topics([t.name for t in specs])

    def start(self, timeout: float = 120.0) -> "EmbeddedCluster":
        """Launch every node, then wait for all; started again on fresh controller ports (and client ports unless
        ``base_port`` fixes them) when another process took one as it started (:class:`PortTaken`)."""
        return on_fresh_ports(lambda: self._start(timeout), lambda: setattr(self, "nodes", {}), "the cluster")

    def _start(self, timeout: float) -> "EmbeddedCluster":
        quorum = {i: free_port() for i in range(1, self.n + 1)}
        cid = _cluster_id()
        props = cluster_properties(self.n)
        for i in quorum:
            port = self.base_port + i - 1 if self.base_port else free_port()
            self.nodes[i] = EmbeddedBroker(port=port, node_id=i, quorum=quorum, cluster_id=cid,
                                           properties=props, heap_mb=self.heap_mb,
                                           default_partitions=self.default_partitions,
                                           log_path=self.log_dir / f"broker-{i}.log" if self.log_dir else None)
        try:
            for b in self.nodes.values():  # a quorum answers once a majority runs: launch all, then wait
                b.start(timeout, wait=False)
            for b in self.nodes.values():
                b.wait_ready(timeout)
            self.wait_all_registered(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("embedded Kafka cluster of %d nodes ready on %s", self.n, self.bootstrap_servers)
        return self

    def wait_all_registered(self, timeout: float = 60.0) -> None:
        """Until every running node is a registered, unfenced broker of the cluster."""
        deadline = time.monotonic() + timeout
        want = {i for i, b in self.nodes.items() if b.running}
        while True:
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.live_servers(), request_timeout_ms=5000)
                try:
                    seen = {b["broker_id"] for b in admin.describe_cluster()["brokers"] if not b.get("is_fenced")}
                finally:
                    admin.close()
                if want <= seen:
                    return
            except Exception as e:  # noqa: BLE001 — not ready yet
                seen = {str(e)}
            if time.monotonic() > deadline:
                raise BrokerError(f"the cluster's brokers {sorted(want)} did not all register in {timeout:g} s "
                                  f"(seen: {seen})")
            time.sleep(0.5)

    def live_servers(self) -> str:
        return ",".join(b.bootstrap_servers for b in self.nodes.values() if b.running)

    def kill(self, node: int) -> None:
        """SIGKILL one node, as a crash would; its data stays for :meth:`restart`."""
        self.nodes[node].kill()
        log.info("killed broker %d", node)

    def restart(self, node: int, timeout: float = 120.0) -> None:
        self.nodes[node].start(timeout)
        self.wait_all_registered(timeout)

    def controller(self) -> int | None:
        """The node id of the active controller (the quorum's leader) as the running nodes' logs tell it: the
        newest epoch any of them has moved to names it."""
        best: tuple[int, int] | None = None
        for i, b in self.nodes.items():
            if not b.running:
                continue
            path = b.log_path or (b.data_dir / "broker.log" if b.data_dir else None)
            if path is None or not Path(path).exists():
                continue
            last = None
            for m in _TRANSITION.finditer(Path(path).read_text(errors="replace")):
                last = m
            if last is None:
                continue
            fields = dict(kv.split("=", 1) for kv in re.findall(r"(\w+=[^,\s)]+)", last.group(2)))
            epoch = int(fields.get("epoch", -1))
            leader = i if last.group(1) == "Leader" else int(fields["leaderId"]) if "leaderId" in fields else None
            if leader is not None and (best is None or epoch > best[0]):
                best = (epoch, leader)
        return best[1] if best else None

    def wait_topics(self, names: list[str], timeout: float = 60.0) -> None:
        """Until every node knows every one of ``names`` with a leader for each partition (a topic just created
        reaches the other brokers' metadata a moment later)."""
        deadline = time.monotonic() + timeout
        for b in self.nodes.values():
            if not b.running:
                continue
            while True:
                admin = KafkaAdminClient(bootstrap_servers=b.bootstrap_servers, request_timeout_ms=5000)
                try:
                    described = admin.describe_topics(names)
                finally:
                    admin.close()
                if all(t["error_code"] == 0 and t["partitions"] and all(p["leader_id"] >= 0 for p in t["partitions"])
                       for t in described):
                    break
                if time.monotonic() > deadline:
                    raise BrokerError(f"broker {b.node_id} did not learn the topics within {timeout:g} s")
                time.sleep(0.2)

    def leader(self, topic: str, partition: int) -> int:
        """The broker leading a partition now."""
        admin = KafkaAdminClient(bootstrap_servers=self.live_servers(), request_timeout_ms=5000)
        try:
            [described] = admin.describe_topics([topic])
        finally:
            admin.close()
        return next(p["leader_id"] for p in described["partitions"] if p["partition_index"] == partition)

    def stop(self) -> None:
        """All nodes at once (the last one alone could not finish a controlled shutdown without a quorum)."""
        for b in self.nodes.values():
            if b.running and b._proc is not None:
                b._proc.terminate()
        for b in self.nodes.values():
            b.stop(timeout=15)

    def __enter__(self) -> "EmbeddedCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
