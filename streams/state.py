"""Durable detector state: the keyed runtimes checkpointed to compacted changelog topics at each
offset commit, and restored when a partition is assigned (start, rebalance, takeover after a kill).

Kafka Streams' and quixstreams' way: state per key in a store, flushed to a changelog at the
checkpoint, recovered on assignment. Here:

* **checkpoint** — Faust flushes its producer right before it commits offsets; the project's
  producer (:mod:`streams.faust_transport`) then writes every key changed since the last
  checkpoint to ``<app id>-<stream>-state-changelog`` (partition = the input partition it belongs
  to) in record batches and waits for their acknowledgement, so the state on the changelog is
  never behind the committed offsets. It may be ahead (events processed but not
  yet committed): after a kill those events come again, and a detector that passes the
  conformance checks gives no new alert id for them.
* **restore** — before the first record of a newly owned partition is processed, the changelog
  partitions of the stream's owned partitions are read from the start to their end into fresh
  runtimes (the agent awaits it, so no record can overtake it); on a rebalance, revoked
  partitions' state is dropped (their new owner restores it).

One record per changed key per commit, not per event: a key touched by a thousand events in a
second is written once.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from connectors.topics import changelog_name
from models.runtime import PartitionedRuntime
from streams import metrics

log = logging.getLogger(__name__)
SEP = "\x1f"  # between detector name and key in a changelog record's key


def record_key(detector: str, key: str) -> bytes:
    return f"{detector}{SEP}{key}".encode()


class Checkpointer:
    """Writes the keys changed since the last checkpoint to the changelogs, as record batches straight on
    the underlying aiokafka producer (a few µs a record; Faust's per-message path costs far more, and a
    checkpoint after a burst holds one record per key touched)."""

    def __init__(self, runtimes: dict[str, PartitionedRuntime], app_id: str) -> None:
        self.runtimes = runtimes
        self.topics = {stream: changelog_name(app_id, stream) for stream in runtimes}

    async def flush(self, producer: Any) -> int:
        started = time.perf_counter()
        pending = []
        written = 0
        for stream, runtime in self.runtimes.items():
            topic = self.topics[stream]
            for partition, task in list(runtime.tasks.items()):
                changes = task.changes()
                if not changes:
                    continue
                batch = producer.create_batch()
                for detector, key, value in changes:
                    k, v = record_key(detector, key), None if value is None else orjson.dumps(value)
                    if batch.append(key=k, value=v, timestamp=None) is None:  # full: send it, start another
                        batch.close()
                        pending.append(await producer.send_batch(batch, topic, partition=partition))
                        batch = producer.create_batch()
                        batch.append(key=k, value=v, timestamp=None)
                    written += 1
                batch.close()
                pending.append(await producer.send_batch(batch, topic, partition=partition))
            metrics.STATE_KEYS.labels(stream).set(len(runtime))
        if pending:
            await asyncio.gather(*pending)  # acknowledged before Faust commits the offsets
            metrics.CHECKPOINT_RECORDS.inc(written)
            metrics.CHECKPOINT_SECONDS.observe(time.perf_counter() - started)
        return written


async def restore(conn: Any, app_id: str, stream: str, runtime: PartitionedRuntime, partitions: list[int]) -> int:
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


async def ensure_restored(conn: Any, app_id: str, stream: str, runtime: PartitionedRuntime, topic: str,
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
    metrics.STATE_KEYS.labels(stream).set(len(runtime))
    log.info("%s: restored partitions %s from %d changelog records in %.2f s", stream, new, read, seconds)


def on_assignment(runtimes: dict[str, PartitionedRuntime], inputs: dict[str, str], assigned: Any) -> None:
    """Drop the state of revoked partitions: their new owner restores it. (New partitions are restored
    by the agent before their first record: Faust may deliver records before this signal has run.)"""
    for stream, runtime in runtimes.items():
        owned = {tp.partition for tp in assigned if tp.topic == inputs[stream]}
        runtime.drop([p for p in list(runtime.tasks) if p not in owned])
        metrics.STATE_KEYS.labels(stream).set(len(runtime))
