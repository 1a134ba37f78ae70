"""Workers of one group share the partitions: every event is processed exactly once between them."""
from __future__ import annotations

import time

from connectors.kafka.broker import free_port
from streams.lab.simulator import RegionSimulator, SimulationConfig
from streams.settings import load_settings
from tests.kafka_helpers import Worker, broker_with_topics, produce_simulation


def events(worker: Worker) -> float:
    try:
        return sum(worker.metric("zhijian_events_total", stream=s) for s in ("prescription", "claim", "waste", "telemetry"))
    except OSError:  # its /metrics is not up yet
        return 0.0


def owned(workers: list[Worker]) -> list[float]:
    try:
        return [w.metric("zhijian_assigned_partitions", topic="zhijian.telemetry") for w in workers]
    except OSError:
        return []


def test_two_workers_split_the_partitions(tmp_path):
    with broker_with_topics(tmp_path / "broker.log") as b:
        s = load_settings(overrides={"kafka": {"bootstrap_servers": b.bootstrap_servers}}, environ={})
        workers = [Worker(b.bootstrap_servers, free_port(), tmp_path / f"w{i}.log").start() for i in range(2)]
        try:
            # on Apache Kafka the first worker owns every partition at once: wait until the second has joined
            # and the four partitions of a topic are split between them
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and owned(workers) != [2, 2]:
                time.sleep(0.2)
            assert owned(workers) == [2, 2]
            sim = RegionSimulator(SimulationConfig(seed=3, days=1, scale=0.3))
            n = produce_simulation(s, sim, sim.t0 + 12 * 3600, max_batch=50)
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and sum(map(events, workers)) < n:
                time.sleep(1)
            time.sleep(2)  # nothing more may arrive: a duplicate would push the sum past n
            counts = [events(w) for w in workers]
            assert sum(counts) == n
            assert min(counts) > 0, counts
        finally:
            for w in workers:
                w.proc.terminate()
                w.proc.wait(30)
