"""The Faust application: one agent per input stream, alerts and dead letters out.

Agents consume raw bytes (a typed topic would let one bad record kill the agent) and
hand each record to :class:`streams.worker.ingest.Ingest`. Alerts are sent at once; Faust flushes the
producer before each offset commit, and the state checkpoint and the forwarded events are
written there too (:mod:`streams.worker.checkpoint`), so a worker that dies mid-way reprocesses records
rather than losing them: at-least-once alerts with deterministic ids, and state that applies
each record once. Re-keyed detectors run in the agents of the repartition topics
(:mod:`streams.worker.plan`).
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import faust
import orjson

from connectors.kafka.topics import KEY_FIELD
from models.contracts.pseudonym import Pseudonymizer
from models.engine.rekey import PartitionedReceiver
from models.engine.runtime import PartitionedRuntime
from streams.worker import checkpoint, metrics, reference, transport
from streams.worker.plan import build_plan, repartition_topics
from streams.worker.ingest import DeadLetter, Ingest
from streams.worker.observe import KIND_FIELD, Observer
from streams.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> faust.App:
    conn = settings.kafka
    transport.FETCH_MAX_WAIT_MS = settings.worker.fetch_max_wait_ms
    app = faust.App(
        settings.worker.app_id,
        broker=conn.faust_url(transport.SCHEME),
        broker_credentials=conn.faust_credentials(),
        autodiscover=False,
        web_enabled=False,
        store="memory://",
        datadir=settings.worker.datadir,
        topic_replication_factor=settings.topics.replication_factor,
        topic_partitions=settings.topics.input_partitions,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=65536,
        consumer_max_fetch_size=8 * 1024 * 1024,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        # a worker killed without leaving its group holds its partitions until the session times out:
        # 10 s (heartbeats every 3 s) instead of Faust's 60 s
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        producer_linger=0.005,
        # checkpoints send the changed state in record batches: 512 KiB each, not 16 KiB (a checkpoint after a
        # burst is tens of MB, and each batch is a round trip before the offsets may be committed)
        producer_max_batch_size=512 * 1024,
        cython_optimizations=True,
    )
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    alerts_topic = app.topic(settings.topic("alerts"), **raw)
    dead_topic = app.topic(settings.topic("deadletter"), **raw)
    plan = build_plan(settings)
    inputs = settings.input_topics()
    group_topics = repartition_topics(settings, plan)
    durable = settings.worker.durable_state  # False: state in memory only, nothing checkpointed or restored
    stores: dict[str, Any] = {**plan.runtimes, **plan.receivers}  # name (stream or group) → its state
    store_topics = {**inputs, **group_topics}  # name → the topic its state follows
    transport.CHECKPOINT = checkpoint.Checkpointer(stores, settings.worker.app_id, plan.rekeying, durable=durable)
    transport.CHECKPOINT_BOUNDARY = checkpoint.BOUNDARY
    pseudonymize = Pseudonymizer.from_env()
    plan.reference.pseudonymize = pseudonymize  # beneficiaries are kept under the pseudonym the claims carry
    reference_ready = asyncio.Event()  # set once the reference topics are read to their end at start
    observer = Observer()
    processed: dict[tuple[str, int], int] = {}  # (topic, partition) → next offset to process
    reported: set[tuple[str, int]] = set()  # partitions with a lag series

    def restorer(name: str) -> Any:
        if not durable:
            return None
        return functools.partial(checkpoint.ensure_restored, conn, settings.worker.app_id, name, stores[name],
                                 store_topics[name])

    for stream, topic in inputs.items():
        ingest = Ingest(stream, plan.units[stream], pseudonymize, KIND_FIELD[stream])
        runtime = plan.runtimes.get(stream)
        agent_fn = _make_agent(stream, ingest, alerts_topic, dead_topic, observer, processed, runtime,
                               restorer(stream) if runtime is not None else None, app,
                               functools.partial(_reference_read, reference_ready, settings.worker.reference_wait_s))
        app.agent(app.topic(topic, **raw), name=f"zhijian.{stream}")(agent_fn)
    for group, topic in group_topics.items():
        agent_fn = _make_group_agent(group, plan.group_stream[group], plan.receivers[group], alerts_topic, dead_topic,
                                     observer, processed, restorer(group), app, pseudonymize.key_id)
        app.agent(app.topic(topic, **raw), name=f"zhijian.{group}")(agent_fn)

    @app.task
    async def mark_up() -> None:
        metrics.UP.set(1)
        observer.refresh()

    @app.task
    async def follow_reference() -> None:
        """Every worker reads the reference topics whole (inventory: the stock in each cold-chain device)."""

        async def refused(table: str, record: Any, e: Any) -> None:
            headers = DeadLetter(record.value, e.reason, e.detail).headers(record.topic, record.partition,
                                                                           record.offset)
            await dead_topic.send(key=record.key, value=record.value, headers=headers, force=True)
            metrics.INVALID.labels(table, e.reason).inc()
            log.warning("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, e.reason)

        def counted(table: str, ok: bool) -> None:
            metrics.REFERENCE_RECORDS.labels(table, "applied" if ok else "refused").inc()
            metrics.REFERENCE_KEYS.labels(table).set(len(plan.reference[table]))

        while True:  # a missing or forbidden topic must not stop the worker: say so, and try again
            try:
                await reference.follow(conn, settings.reference_topics(), plan.reference, refused, counted,
                                       reference_ready)
            except Exception as e:  # noqa: BLE001 — reference data only enriches alerts
                log.error("cannot follow the reference topics %s (%s: %s); alerts go out without the stock "
                          "until it works — retrying in 30 s", ", ".join(settings.reference_topics().values()),
                          type(e).__name__, e)
                await asyncio.sleep(30)

    consumed = {**inputs, **group_topics}

    @app.on_partitions_assigned.connect
    async def count_assignment(sender: Any, assigned: Any, **_: Any) -> None:
        """Faust's eager rebalancing hands over the whole new assignment each time."""
        checkpoint.on_assignment(stores, store_topics, assigned, plan.rekeying)
        owned = Counter(tp.topic for tp in assigned)
        for topic in consumed.values():
            metrics.ASSIGNED.labels(topic).set(owned.get(topic, 0))
        metrics.REBALANCES.inc()
        now_owned = {(tp.topic, tp.partition) for tp in assigned}
        for key in set(processed) - now_owned:
            processed.pop(key, None)
        for key in reported - now_owned:
            reported.discard(key)
            _forget_lag(*key)

    @app.timer(interval=30.0)
    async def reconcile() -> None:
        """Every record read ends as events judged or refused: the counters must agree."""
        check_accounting(inputs)

    @app.timer(interval=5.0)
    async def report_lag() -> None:
        """Consumer lag per owned input partition: high watermark − next offset to process."""
        observer.refresh()
        owned = [tp for tp in app.consumer.assignment() if tp.topic in consumed.values()]
        if not owned:
            return
        try:
            highwaters = await app.consumer.highwaters(*owned)
        except Exception as e:  # the broker may be away for a moment; report on the next tick
            log.info("could not read high watermarks: %s", e)
            return
        for tp, high in highwaters.items():
            position = processed.get((tp.topic, tp.partition))
            if position is None:
                position = await app.consumer.position(tp)
            if position is not None and high is not None:
                metrics.LAG.labels(tp.topic, str(tp.partition)).set(max(0, high - position))
                reported.add((tp.topic, tp.partition))

    return app


#: A dead letter larger than this goes as a reference to its source record: Kafka refuses records over 1 MiB by
#: default (message.max.bytes), and the headers need room too.
DEAD_LETTER_MAX_BYTES = 900 * 1024


def dead_reference(topic: str, partition: int, offset: int, value: bytes, reason: str) -> bytes:
    """What a dead letter too large for the topic carries instead of the record: where to find it, and its hash.

    >>> sorted(orjson.loads(dead_reference("zhijian.claims", 2, 41, b"x" * 10, "not_json")))
    ['reason', 'reference', 'sha256', 'size']
    """
    return orjson.dumps({"reference": {"topic": topic, "partition": partition, "offset": offset},
                         "size": len(value), "sha256": hashlib.sha256(value).hexdigest(), "reason": reason})


def check_accounting(streams: Any) -> dict[str, float]:
    """Events read − (judged + refused) per stream, from the worker's own counters; logged when not 0."""
    gaps = {}
    for stream in streams:
        read = metrics.EVENTS_READ.labels(stream)._value.get()
        done = metrics.EVENTS.labels(stream)._value.get() + metrics.EVENTS_REFUSED.labels(stream)._value.get()
        gaps[stream] = read - done
        metrics.ACCOUNTING_GAP.labels(stream).set(read - done)
        if read != done:
            log.error("accounting: %s read %d events but judged or refused %d", stream, read, done)
    return gaps


def _forget_lag(topic: str, partition: int) -> None:
    try:
        metrics.LAG.remove(topic, str(partition))
    except KeyError:
        pass


async def _reference_read(ready: asyncio.Event, wait_s: float) -> None:
    """Wait, once, until the reference topics are read to their end (Kafka Streams bootstraps a global table
    before it processes): a claim is judged against the beneficiaries published before it."""
    if ready.is_set():
        return
    try:
        await asyncio.wait_for(ready.wait(), wait_s)
    except asyncio.TimeoutError:
        log.error("the reference topics were not read to their end in %.0f s; judging input without waiting "
                  "(see the reference follower's error above; raise [worker] reference_wait_s on a slow cluster)",
                  wait_s)
        ready.set()


def _make_agent(stream: str, ingest: Ingest, alerts_topic: Any, dead_topic: Any, observer: Observer,
                processed: dict[tuple[str, int], int], runtime: PartitionedRuntime | None, restore: Any,
                app: faust.App, reference_read: Any = None) -> Any:
    records = metrics.RECORDS.labels(stream)
    replayed = metrics.REPLAYED.labels(stream)
    events_read = metrics.EVENTS_READ.labels(stream)
    events_refused = metrics.EVENTS_REFUSED.labels(stream)
    references = metrics.DEAD_REFERENCES.labels(stream)
    events = metrics.EVENTS.labels(stream)
    latency = metrics.LATENCY.labels(stream)
    key_id = ingest.pseudonymize.key_id

    async def process(records_stream: faust.StreamT) -> None:
        async for ev in records_stream.events():
            msg = ev.message
            if reference_read is not None:
                await reference_read()
            task = None
            if restore is not None:
                if msg.partition not in runtime.tasks:
                    await restore(msg.partition, app.consumer)
                task = runtime.task(msg.partition)
                if msg.offset <= task.meta.get("applied", -1):
                    # in the restored state already: its alerts and forwarded events went out before the
                    # checkpoint was written, so it is not applied twice
                    replayed.inc()
                    processed[(msg.topic, msg.partition)] = msg.offset + 1
                    continue
            # a checkpoint is captured between records, not inside one; force=True below: Faust would otherwise
            # hold a message sent from an agent until the offset commit covers its record, so a checkpoint could
            # hold a record's effects while its alerts were not yet sent (a kill then lost them)
            async with checkpoint.BOUNDARY:
                out = ingest.handle(ev.value, msg.topic, msg.partition, msg.offset, msg.timestamp)
                if out.newest_t is not None:
                    observer.event_time(stream, out.newest_t)
                for alert in out.alerts:
                    alert.pseudonym_key_id = key_id
                    await alerts_topic.send(key=alert.key, value=alert.to_json(), force=True)
                    observer.alert(alert)
                for dead in out.dead:
                    headers = list(msg.headers or []) + dead.headers(msg.topic, msg.partition, msg.offset)
                    value = dead.value
                    if value is not None and len(value) > DEAD_LETTER_MAX_BYTES:
                        value = dead_reference(msg.topic, msg.partition, msg.offset, value, dead.reason)
                        headers.append(("zhijian.error.reference", b"1"))
                        references.inc()
                    await dead_topic.send(key=msg.key, value=value, headers=headers, force=True)
                    metrics.INVALID.labels(stream, dead.reason).inc()
                    log.warning("dead-lettered %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, dead.reason)
                events_read.inc(out.read)
                if out.held:
                    metrics.EVENTS_HELD.labels(stream).inc(out.held)
                events_refused.inc(out.refused)
                if task is not None:
                    task.meta["applied"] = msg.offset
                    task.touch()
            records.inc()
            events.inc(out.events)
            observer.events(stream, out.kinds)
            processed[(msg.topic, msg.partition)] = msg.offset + 1
            if msg.timestamp:
                latency.observe(max(0.0, time.time() - msg.timestamp))

    process.__name__ = f"process_{stream}"
    process.__doc__ = f"Validate {stream} records ({KEY_FIELD[stream]} keys one entity to a partition) and detect."
    return process


def _make_group_agent(group: str, stream: str, receiver: PartitionedReceiver, alerts_topic: Any, dead_topic: Any,
                      observer: Observer, processed: dict[tuple[str, int], int], restore: Any, app: faust.App,
                      key_id: str) -> Any:
    """The agent of a repartition topic: envelopes of re-keyed events → the group's detectors."""
    forwarded = metrics.FORWARDED.labels(group)

    async def process(records_stream: faust.StreamT) -> None:
        async for ev in records_stream.events():
            msg = ev.message
            if restore is not None and msg.partition not in receiver.tasks:
                await restore(msg.partition, app.consumer)
            async with checkpoint.BOUNDARY:
                try:
                    envelope = orjson.loads(ev.value)
                    alerts = receiver.receive(msg.partition, envelope)
                except Exception as e:  # written by a worker of another version, or damaged
                    log.error("%s[%d]@%d: unreadable envelope: %s", msg.topic, msg.partition, msg.offset, e)
                    envelope, alerts = None, []
                    receiver.failures.append(e)
                for alert in alerts:
                    alert.pseudonym_key_id = key_id
                    await alerts_topic.send(key=alert.key, value=alert.to_json(), force=True)
                    observer.alert(alert)
                while receiver.failures:
                    f = receiver.failures.pop(0)
                    reason = "detector_error" if envelope is not None else "bad_envelope"
                    log.error("%s failed on %s[%d]@%d: %s", group, msg.topic, msg.partition, msg.offset, f)
                    headers = DeadLetter(None, reason, str(f)).headers(msg.topic, msg.partition, msg.offset)
                    await dead_topic.send(key=None, value=ev.value, headers=headers, force=True)
                    metrics.INVALID.labels(stream, reason).inc()
            if envelope is not None:
                forwarded.inc(len(envelope.get("events", ())))
            processed[(msg.topic, msg.partition)] = msg.offset + 1

    process.__name__ = f"process_{group.replace('-', '_')}"
    process.__doc__ = f"Run the detectors re-keyed as {group} over the events forwarded to them."
    return process


def run_worker(settings: Settings) -> int:
    """Run the worker until SIGINT/SIGTERM; returns the exit code."""
    Path(settings.worker.datadir).mkdir(parents=True, exist_ok=True)
    log.info("pseudonymization key id %s (alerts carry it as pseudonym_key_id)", Pseudonymizer.from_env().key_id)
    metrics.serve(settings.worker.metrics_host, settings.worker.metrics_port)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.worker.log_level, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as e:
        return int(e.code or 0)
    return 0
