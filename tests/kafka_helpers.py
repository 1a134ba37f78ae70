"""Real Kafka clients for the integration tests: produce with kafka-python, read back by assignment."""
from __future__ import annotations

import subprocess
from contextlib import contextmanager
import time
import urllib.request
from typing import Any, Callable, Iterator

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.lab.processes import start_worker_process


@contextmanager
def broker_with_topics(log_path, app_id: str | None = None) -> Iterator[Any]:
    """An embedded broker (temporary log) with every topic of the settings created, the state changelogs
    of ``app_id`` included."""
    from connectors.kafka.broker import EmbeddedBroker, ensure_topics
    from streams.settings import load_settings

    with EmbeddedBroker(log_path=log_path) as b:
        worker = {"app_id": app_id} if app_id else {}
        s = load_settings(overrides={"kafka": {"bootstrap_servers": b.bootstrap_servers}, "worker": worker},
                          environ={})
        ensure_topics(b.connection, s.topic_specs())
        yield b


class Worker:
    """A `zhijian worker` subprocess with its own metrics port."""

    def __init__(self, bootstrap: str, port: int, log_path, env: dict[str, str] | None = None) -> None:
        self.bootstrap, self.port, self.log_path, self.env = bootstrap, port, log_path, env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Worker":
        self.proc = start_worker_process(self.bootstrap, self.port, self.log_path, extra_env=self.env)
        return self

    def metrics(self) -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2).read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels`` (all of them if none)."""
        from prometheus_client.parser import text_string_to_metric_families

        return sum(sample.value for family in text_string_to_metric_families(self.metrics())
                   for sample in family.samples
                   if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))

    def wait_metric(self, name: str, at_least: float, timeout: float = 120, **labels: str) -> float:
        deadline = time.monotonic() + timeout
        value = 0.0
        while time.monotonic() < deadline:
            assert self.proc and self.proc.poll() is None, f"worker died, see {self.log_path}"
            try:
                value = self.metric(name, **labels)
                if value >= at_least:
                    return value
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{name}{labels} stayed at {value} < {at_least} for {timeout} s; see {self.log_path}")


def produce_simulation(settings: Any, sim: Any, until: float, max_batch: int) -> int:
    """Send the simulator's events up to event time ``until`` in envelopes; return how many."""
    from connectors.kafka.producer import EnvelopeProducer

    producer = EnvelopeProducer(settings.kafka, settings.input_topics(), settings.topics.input_partitions,
                                max_batch=max_batch)
    n = 0
    for stream, key, event in sim.until(until):
        producer.add(stream, key, event)
        n += 1
    producer.close()
    return n


def produce(bootstrap: str, topic: str, values: list[Any], key: str | None = None) -> list[Any]:
    """Send each value (dict/list → JSON, bytes as is); return the record metadata."""
    p = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks=1)
    futures = [p.send(topic, value=v if isinstance(v, bytes) else orjson.dumps(v),
                      key=key.encode() if key else None) for v in values]
    p.flush()
    meta = [f.get(10) for f in futures]
    p.close()
    return meta


def read_topic(bootstrap: str, topic: str, until: Callable[[list[Any]], bool], timeout: float = 60) -> list[Any]:
    """Read every record of a topic from the start until `until(records)` holds."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    parts = c.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for batch in c.poll(timeout_ms=300).values():
                records.extend(batch)
            if until(records):
                return records
    finally:
        c.close()
    raise AssertionError(f"condition not met on {topic} after {timeout} s with {len(records)} records")


def alerts_of(records: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in records]
