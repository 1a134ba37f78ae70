"""Durable detector state and re-keying at the offset commit.

Kafka Streams' and quixstreams' way: state per key in a store, flushed to a changelog at the
checkpoint, recovered on assignment. Here, at each offset commit (Faust flushes its producer
right before it commits; the project's producer, :mod:`streams.worker.transport`, calls
:meth:`Checkpointer.flush` there):

1. **capture**, between two records (the agents hold :data:`BOUNDARY` while they handle a record
   and send what it caused): every key changed since the last checkpoint, each runtime's own
   record (its watermark, the last input offset it applied, its sources), and the envelopes the
   forwarders hold for the repartition topics (:mod:`models.engine.rekey`);
2. Faust's own flush: every alert sent so far is acknowledged — so every alert of the captured
   state is on the alert topic;
3. **write** the envelopes to the repartition topics and the changes to
   ``<app id>-<name>-state-changelog`` (partition = the partition the state belongs to) in record
   batches, and wait for their acknowledgement; then Faust commits the offsets it chose before
   step 1, which are never ahead of the captured state.

After a kill the new owner **restores** a partition's state from its changelog before the
partition's first record (the agent awaits it), and skips the records the restored state has
already applied (their alerts and envelopes went out before the checkpoint was written): state
and forwarding see each record once, and alerts are at-least-once with deterministic ids. On a
rebalance, revoked partitions' state is dropped (their new owner restores it).

One record per changed key per commit, not per event: a key touched by a thousand events in a
second is written once.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from connectors.kafka.topics import changelog_name, repartition_name
from models.engine.rekey import Rekeying
from streams.worker import metrics

log = logging.getLogger(__name__)
SEP = "\x1f"  # between detector name and key in a changelog record's key


def record_key(detector: str, key: str) -> bytes:
    return f"{detector}{SEP}{key}".encode()


Captured = list[tuple[str, int, list[tuple[bytes, bytes | None]]]]

#: Held by an agent while it handles one record and sends what it caused; the checkpoint captures the
#: state only between records, so a captured state never holds a record whose alerts are not yet sent.
BOUNDARY = asyncio.Lock()


class Checkpointer:
    """Captures the state changed since the last checkpoint and the envelopes to forward, and writes them as
    record batches straight on the underlying aiokafka producer (a few µs a record; Faust's per-message path
    costs far more, and a checkpoint after a burst holds one record per key touched)."""

    def __init__(self, stores: dict[str, Any], app_id: str, rekeying: dict[str, Rekeying] | None = None,
                 durable: bool = True) -> None:
        self.stores = stores if durable else {}  # name (stream or group) → PartitionedRuntime / PartitionedReceiver
        self.topics = {name: changelog_name(app_id, name) for name in stores}
        self.rekeying = rekeying or {}
        self.repartition = {group: repartition_name(app_id, group) for r in self.rekeying.values() for group in r.groups}

    def capture(self) -> tuple[Captured, Captured]:
        """(topic, partition, records) of the envelopes to forward and of the state changes; call between two
        records."""
        forward: Captured = []
        for rekeying in self.rekeying.values():
            per_target: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
            for group, target, envelope in rekeying.flush():
                per_target.setdefault((self.repartition[group], target), []).append((b"", orjson.dumps(envelope)))
            forward += [(topic, p, records) for (topic, p), records in per_target.items()]
        out: Captured = []
        for name, store in self.stores.items():
            for partition, task in list(store.tasks.items()):
                changes = task.changes()
                if changes:
                    out.append((self.topics[name], partition,
                                [(record_key(d, k), None if v is None else orjson.dumps(v)) for d, k, v in changes]))
            metrics.STATE_KEYS.labels(name).set(len(store))
        return forward, out

    async def write(self, producer: Any, captured: tuple[Captured, Captured]) -> int:
        """The envelopes first, then the state: a state that says a record was applied is never on the
        changelog before what the record forwarded (a kill between the two forwards it again, and the
        receiver knows its offsets)."""
        started = time.perf_counter()
        forward, changes = captured
        written = await self._send(producer, forward) + await self._send(producer, changes)
        if changes:
            metrics.CHECKPOINT_RECORDS.inc(sum(len(r) for _, _, r in changes))
            metrics.CHECKPOINT_SECONDS.observe(time.perf_counter() - started)
        return written

    @staticmethod
    async def _send(producer: Any, captured: Captured) -> int:
        pending = []
        written = 0
        for topic, partition, records in captured:
            batch = producer.create_batch()
            for k, v in records:
                if batch.append(key=k, value=v, timestamp=None) is None:  # full: send it, start another
                    batch.close()
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=k, value=v, timestamp=None)
                written += 1
            batch.close()
            pending.append(await producer.send_batch(batch, topic, partition=partition))
        if pending:
            await asyncio.gather(*pending)  # acknowledged before Faust commits the offsets
        return written


async def restore(conn: Any, app_id: str, stream: str, runtime: Any, partitions: list[int]) -> int:
    """Read the changelog partitions of ``partitions`` into fresh runtimes; return the records read."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    if not partitions:
        return 0
    topic = changelog_name(app_id, stream)
    consumer = AIOKafkaConsumer(**conn.aiokafka(), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    read = 0
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        for tp in tps:
            runtime.tasks.pop(tp.partition, None)
            runtime.task(tp.partition)
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, records in batches.items():
                task = runtime.task(tp.partition)
                for r in records:
                    detector, _, key = r.key.decode().partition(SEP)
                    task.load(detector, key, None if r.value is None else orjson.loads(r.value))
                    read += 1
                if records and records[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return read


async def ensure_restored(conn: Any, app_id: str, stream: str, runtime: Any, topic: str,
                          partition: int, consumer: Any) -> None:
    """Before a partition's first record is processed: restore it, and every other owned partition of the
    stream not restored yet, from the changelog (one read for all of them). The agent calls it only for a
    partition it has no state task for, so the hot path pays a dict look-up."""
    started = time.perf_counter()
    owned = sorted({tp.partition for tp in consumer.assignment() if tp.topic == topic} | {partition})
    new = [p for p in owned if p not in runtime.tasks]
    read = await restore(conn, app_id, stream, runtime, new)
    seconds = time.perf_counter() - started
    metrics.RESTORE_SECONDS.set(seconds)
    metrics.RESTORE_SECONDS_ALL.inc(seconds)
    metrics.RESTORED_RECORDS.inc(read)
    metrics.STATE_KEYS.labels(stream).set(len(runtime))
    log.info("%s: restored partitions %s from %d changelog records in %.2f s", stream, new, read, seconds)


def on_assignment(stores: dict[str, Any], topics: dict[str, str], assigned: Any,
                  rekeying: dict[str, Rekeying] | None = None) -> None:
    """Drop the state of revoked partitions, and their forwarders: their new owner restores it. (New
    partitions are restored by the agent before their first record: Faust may deliver records before this
    signal has run.)"""
    for name, store in stores.items():
        owned = {tp.partition for tp in assigned if tp.topic == topics[name]}
        store.drop([p for p in list(store.tasks) if p not in owned])
        metrics.STATE_KEYS.labels(name).set(len(store))
    for stream, r in (rekeying or {}).items():
        owned = {tp.partition for tp in assigned if tp.topic == topics[stream]}
        r.drop([p for _, p in list(r.forwarders) if p not in owned])
