"""Broker faults 故障注入 for the evaluation harness: on a three-broker cluster, kill a broker with SIGKILL — the
active controller once, the leader of an input partition once — while the simulated region streams through the
workers, restart it after a while, and measure what the pipeline noticed.

What is measured around each fault: how long the workers' committed offsets stood still (the longest interval
without progress while records waited, from the kill to a minute after the broker came back), and when the next
alert was sent. The harness (:mod:`streams.lab.evaluate`) compares the alert set by id and the dead letters by
reason with an undisturbed run, and waits until the group's lag is zero.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from connectors.kafka.cluster import EmbeddedCluster


@dataclass
class Fault:
    """One broker killed: which, why, when (wall clock), and when it came back."""

    role: str  # "controller" or "leader of <topic>[<partition>]"
    node: int
    killed_at: float
    restarted_at: float | None = None
    figures: dict[str, Any] = field(default_factory=dict)


class CommitWatch:
    """Samples the group's committed offsets and the topics' ends every ``every`` seconds on a thread: the
    timeline the stalls are read from."""

    def __init__(self, servers: Callable[[], str], group: str, topics: list[str], every: float = 1.0) -> None:
        self.servers, self.group, self.topics, self.every = servers, group, topics, every
        self.samples: list[tuple[float, int, int]] = []  # (time, committed, end)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-watch", daemon=True)

    def start(self) -> "CommitWatch":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.servers(), request_timeout_ms=3000)
                consumer = KafkaConsumer(bootstrap_servers=self.servers(), request_timeout_ms=5000)
                try:
                    committed = admin.list_group_offsets({self.group: None}).get(self.group, {})
                    tps = [TopicPartition(t, p) for t in self.topics for p in (consumer.partitions_for_topic(t) or ())]
                    ends = consumer.end_offsets(tps)
                finally:
                    consumer.close()
                    admin.close()
            except Exception:  # noqa: BLE001 — a broker is away: no sample this time
                continue
            done = sum(committed[tp].offset for tp in tps if tp in committed)
            self.samples.append((time.time(), done, sum(ends.values())))

    def stall(self, start: float, end: float) -> float:
        """The longest time within [start, end] the committed offsets did not move while records waited."""
        longest, since = 0.0, None
        last = None
        for t, done, total in self.samples:
            if t < start - self.every:
                last = done
                continue
            if t > end:
                break
            moved = last is not None and done > last
            if moved or done >= total:
                since = None
            elif since is None:
                since = t
            else:
                longest = max(longest, t - since)
            last = done
        return longest


class BrokerFaults:
    """Kills the controller at ``at[0]`` and a partition leader at ``at[1]`` of the simulated days, each restarted
    ``down_s`` seconds later; :meth:`tick` is called as the simulation advances (and while the workers drain)."""

    def __init__(self, cluster: EmbeddedCluster, topic: str, partition: int = 0, down_s: float = 15.0,
                 at: tuple[float, float] = (0.3, 0.6), log: Callable[[str], None] = print) -> None:
        self.cluster, self.topic, self.partition = cluster, topic, partition
        self.down_s, self.at, self.log = down_s, at, log
        self.faults: list[Fault] = []

    def tick(self, progress: float) -> None:
        """``progress``: the share of the simulated days produced (1.0 while draining)."""
        down = [f for f in self.faults if f.restarted_at is None]
        for f in down:
            if time.time() - f.killed_at >= self.down_s:
                self.cluster.restart(f.node)
                f.restarted_at = time.time()
                self.log(f"  [faults] broker {f.node} ({f.role}) restarted after {f.restarted_at - f.killed_at:.0f} s")
        if down:
            return
        if len(self.faults) == 0 and progress >= self.at[0]:
            node = self.cluster.controller()
            if node is not None:
                self._kill(node, "controller")
        elif len(self.faults) == 1 and progress >= self.at[1]:
            node = self.cluster.leader(self.topic, self.partition)
            self._kill(node, f"leader of {self.topic}[{self.partition}]")

    def _kill(self, node: int, role: str) -> None:
        self.cluster.kill(node)
        self.faults.append(Fault(role, node, time.time()))
        self.log(f"  [faults] killed broker {node} ({role}) with SIGKILL")

    @property
    def settled(self) -> bool:
        """Both faults done and every broker back."""
        return len(self.faults) == 2 and all(f.restarted_at is not None for f in self.faults)

    def report(self, watch: CommitWatch, alert_times: list[float]) -> list[dict[str, Any]]:
        """Per fault: the longest stall of the committed offsets from the kill to a minute after the restart, and
        the first alert sent after the kill."""
        out = []
        times = sorted(alert_times)
        for f in self.faults:
            back = f.restarted_at or f.killed_at
            after = next((t for t in times if t >= f.killed_at), None)
            window = [x for x in watch.samples if f.killed_at <= x[0] <= back + 60]
            f.figures = {"role": f.role, "broker": f.node, "down_s": round(back - f.killed_at, 1),
                         "commit_samples": len(window),
                         "longest_commit_stall_s": round(watch.stall(f.killed_at, back + 60), 1),
                         "first_alert_after_kill_s": None if after is None else round(after - f.killed_at, 1)}
            out.append(f.figures)
        return out
