"""Producing events to the input topics: single events or per-partition envelopes."""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

import orjson
from kafka import KafkaProducer
from kafka.partitioner.default import murmur2

from connectors.kafka.connection import KafkaConnection


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives this key (murmur2, as the Java client)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def envelope(encoded_events: list[bytes]) -> bytes:
    """Already-encoded events → one JSON array, the value of one Kafka record."""
    return b"[" + b",".join(encoded_events) + b"]"


def build_envelopes(items: Iterable[tuple[str, str, dict[str, Any]]], topics: dict[str, str], partitions: int,
                    max_batch: int) -> list[tuple[str, int, bytes, int]]:
    """Encode events into (topic, partition, envelope bytes, event count), ready to send."""
    buffers: dict[tuple[str, int], list[bytes]] = defaultdict(list)
    out = []
    for stream, key, event in items:
        tp = (topics[stream], partition_for(key, partitions))
        buf = buffers[tp]
        buf.append(orjson.dumps(event))
        if len(buf) >= max_batch:
            out.append((*tp, envelope(buf), len(buf)))
            buf.clear()
    out.extend((*tp, envelope(buf), len(buf)) for tp, buf in buffers.items() if buf)
    return out


class EnvelopeProducer:
    """Groups events by (topic, partition of their key) and sends each group as one JSON array.

    Because the partition is the one the key alone would get, single-event producers (kcat,
    hospital systems) and envelopes keep one entity's events on one partition.
    """

    def __init__(self, conn: KafkaConnection, topics: dict[str, str], partitions: int,
                 max_batch: int = 500) -> None:
        self.topics = topics  # stream → topic name
        self.partitions = partitions
        self.max_batch = max_batch
        # acks=all and idempotence: on a cluster an acknowledged envelope is on min.insync.replicas brokers, and a
        # retry after a leader moves does not write it twice; one request in flight per broker, so a retried
        # envelope cannot land behind the next one (a device's readings out of order read as a silence)
        self.producer = KafkaProducer(**conn.kafka_python(), linger_ms=5, acks="all", enable_idempotence=True,
                                      max_in_flight_requests_per_connection=1,
                                      max_request_size=8 * 1024 * 1024, batch_size=256 * 1024)
        self._buffers: dict[tuple[str, int], list[bytes]] = defaultdict(list)
        self.sent_events = 0

    def add(self, stream: str, key: str, event: dict[str, Any]) -> None:
        if self.max_batch == 1:  # one event per record, keyed like any outside producer's
            self.producer.send(self.topics[stream], key=key.encode(), value=orjson.dumps(event),
                               partition=partition_for(key, self.partitions))
            self.sent_events += 1
            return
        tp = (self.topics[stream], partition_for(key, self.partitions))
        buf = self._buffers[tp]
        buf.append(orjson.dumps(event))
        if len(buf) >= self.max_batch:
            self._send(tp)

    def add_all(self, items: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        for stream, key, event in items:
            self.add(stream, key, event)

    def send_keyed(self, topic: str, records: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """One record per (key, value), keyed: for a compacted reference topic (the latest per key is kept)."""
        for key, value in records:
            self.producer.send(topic, key=key.encode(), value=orjson.dumps(value))

    def send_envelope(self, topic: str, partition: int, value: bytes, count: int) -> None:
        self.producer.send(topic, value=value, partition=partition)
        self.sent_events += count

    def _send(self, tp: tuple[str, int]) -> None:
        buf = self._buffers.pop(tp, None)
        if not buf:
            return
        self.send_envelope(tp[0], tp[1], envelope(buf), len(buf))

    def flush(self) -> None:
        for tp in list(self._buffers):
            self._send(tp)
        self.producer.flush()

    def close(self) -> None:
        self.flush()
        self.producer.close()
