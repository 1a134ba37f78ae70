"""The worker 工作进程: the engine on Kafka through Faust — an agent per input topic and per repartition topic,
alerts and dead letters out, detector state checkpointed at every offset commit.

Agents consume raw bytes (a typed topic would let one bad record kill the agent) and hand each record to
:class:`streams.worker.ingest.Ingest`. Alerts are sent at once; the offset commit is the checkpoint's
(:class:`streams.worker.checkpoint.Checkpoint`): it captures the state between two records, flushes the alerts,
writes the state and forwarded events, then commits — so a worker that dies mid-way reprocesses records rather
than losing them: at-least-once alerts with deterministic ids, and state that applies each record once.
Re-keyed detectors run in the agents of the repartition topics (:mod:`streams.worker.plan`).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import faust
import orjson
from faust.types import TP

from connectors.kafka.topics import KEY_FIELD
from models.contracts.alert import Alert
from models.contracts.pseudonym import Pseudonymizer
from models.contracts.report import Report
from streams.settings import Settings
from streams.worker import heap, metrics, reference, transport
from streams.worker.checkpoint import Checkpoint
from streams.worker.ingest import DeadLetter, Ingest
from streams.worker.observe import KIND_FIELD, Observer
from streams.worker.plan import build_plan, repartition_topics

log = logging.getLogger(__name__)

RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
#: How often the forwarders send what they hold between checkpoints: the wait of a re-keyed detector's events.
FORWARD_EVERY_S = 0.1
#: A dead letter larger than this goes as a reference to its source record: Kafka refuses records over 1 MiB by
#: default (message.max.bytes), and the headers need room too.
DEAD_LETTER_MAX_BYTES = 900 * 1024


class WorkerApp(faust.App):
    """Faust's app, carrying what the worker's transport reads (:mod:`streams.worker.transport`)."""

    checkpoint: Checkpoint | None = None  # the commit protocol
    fetch_max_wait_ms: int | None = None  # the consumer's fetch wait ([worker] fetch_max_wait_ms)


def faust_app(settings: Settings) -> WorkerApp:
    """The Faust app with the worker's consumer and producer settings."""
    conn = settings.kafka
    app = WorkerApp(
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
        # a short buffer and 1 MiB fetches: records wait in Kafka, not in the worker's memory (64k buffered records of
        # 500-event envelopes were most of the peak RSS), and the fetcher still keeps the agents fed
        stream_buffer_maxsize=128,
        consumer_max_fetch_size=1024 * 1024,
        broker_commit_every=1000,
        broker_commit_interval=settings.worker.checkpoint_interval_s,
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
    app.fetch_max_wait_ms = settings.worker.fetch_max_wait_ms
    return app


class Worker:
    """The agents, tasks and timers of one worker process over its Faust app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = faust_app(settings)
        self.plan = build_plan(settings)
        self.inputs = settings.input_topics()
        self.group_topics = repartition_topics(settings, self.plan)
        self.consumed = {**self.inputs, **self.group_topics}  # stream or group → the topic it reads
        self.app.checkpoint = Checkpoint(settings.kafka, {**self.plan.runtimes, **self.plan.receivers},
                                         self.consumed, settings.worker.app_id, self.plan.rekeying,
                                         durable=settings.worker.durable_state, report=metrics.checkpointed,
                                         caught_up=self.caught_up, member=self.member_id)
        self.checkpoint = self.app.checkpoint
        self.pseudonymize = Pseudonymizer.from_env()
        self.plan.reference.pseudonymize = self.pseudonymize  # beneficiaries kept under the claims' pseudonyms
        self.reference_ready = asyncio.Event()  # set once the reference topics are read to their end at start
        self.observer = Observer()
        self.processed: dict[tuple[str, int], int] = {}  # (topic, partition) → next offset to process
        self.positions: dict[tuple[str, int], int] = {}  # the same, asked of the consumer before any record came
        self.reported: set[tuple[str, int]] = set()  # partitions with a lag series
        self.backpressure_counted = 0.0  # of Checkpoint.waited, the seconds already in their counter
        self.alerts_topic = self.app.topic(settings.topic("alerts"), **RAW)
        self.dead_topic = self.app.topic(settings.topic("deadletter"), **RAW)
        self.reports_topic = self.app.topic(settings.topic("reports"), **RAW)
        for stream, topic in self.inputs.items():
            self.app.agent(self.app.topic(topic, **RAW), name=f"zhijian.{stream}")(self._input_agent(stream))
        for group, topic in self.group_topics.items():
            self.app.agent(self.app.topic(topic, **RAW), name=f"zhijian.{group}")(self._group_agent(group))
        self._services()

    def member_id(self) -> str | None:
        """This worker's member id in its consumer group, as its aiokafka consumer knows it ("" once the group has
        dropped it, until it joins again; None before the consumer runs): what a checkpoint confirms with the
        coordinator before it commits (:meth:`Checkpoint._confirm`). Faust runs the consumer on a thread of its
        own; reading a string attribute from here is safe."""
        thread = getattr(self.app.consumer, "_thread", None)
        coordinator = getattr(getattr(thread, "_consumer", None), "_coordinator", None)
        member = getattr(coordinator, "member_id", None)
        return member if isinstance(member, str) else None

    # -- what every agent sends

    async def send_alerts(self, alerts: list[Alert]) -> None:
        # force=True: Faust would otherwise hold a message sent from an agent until the offset commit covers its
        # record, so a checkpoint could hold a record's effects while its alerts were not yet sent (a kill then
        # lost them)
        for alert in alerts:
            alert.pseudonym_key_id = self.pseudonymize.key_id
            self.checkpoint.watch(await self.alerts_topic.send(key=alert.key, value=alert.to_json(), force=True))
            self.observer.alert(alert)

    async def send_reports(self, reports: list[Report]) -> None:
        """A period's figures (models.contracts.report), sent as the alerts are: before the checkpoint covers them."""
        for report in reports:
            self.checkpoint.watch(await self.reports_topic.send(key=report.key, value=report.to_json(), force=True))
            metrics.REPORTS.labels(report.kind).inc()

    async def send_dead(self, stream: str, msg: Any, dead: DeadLetter, value: bytes | None = None) -> None:
        headers = list(msg.headers or []) + dead.headers(msg.topic, msg.partition, msg.offset)
        value = dead.value if value is None else value
        if value is not None and len(value) > DEAD_LETTER_MAX_BYTES:
            value = dead_reference(msg.topic, msg.partition, msg.offset, value, dead.reason)
            headers.append(("zhijian.error.reference", b"1"))
            metrics.DEAD_REFERENCES.labels(stream).inc()
        self.checkpoint.watch(await self.dead_topic.send(key=msg.key, value=value, headers=headers, force=True))
        metrics.INVALID.labels(stream, dead.reason).inc()
        log.warning("dead-lettered %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, dead.reason)

    # -- the agents

    def _input_agent(self, stream: str) -> Any:
        ingest = Ingest(stream, self.plan.units[stream], self.pseudonymize, KIND_FIELD[stream])
        runtime = self.plan.runtimes.get(stream)
        durable = self.settings.worker.durable_state and runtime is not None
        wait_s = self.settings.worker.reference_wait_s
        counters = {name: getattr(metrics, name).labels(stream)
                    for name in ("RECORDS", "REPLAYED", "EVENTS_READ", "EVENTS_REFUSED", "EVENTS", "LATENCY")}
        restored: set[int] = set()  # partitions restored whose first record has not come yet (state_gap)

        async def process(records: faust.StreamT) -> None:
            async for ev in records.events():
                msg = ev.message
                await self._reference_read(wait_s)
                task = None
                if durable:
                    if msg.partition not in runtime.tasks:
                        restored.update(await self.checkpoint.ensure_restored(
                            stream, msg.partition, self.app.consumer.assignment()))
                    task = runtime.task(msg.partition)
                    if restored and msg.partition in restored:  # its first record since the restore
                        restored.discard(msg.partition)
                        state_gap(stream, msg.topic, msg.partition, task.meta, msg.offset)
                    if msg.offset <= task.meta.get("applied", -1):
                        # in the restored state already: its alerts and forwarded events went out before the
                        # checkpoint was written, so it is not applied twice
                        counters["REPLAYED"].inc()
                        self.processed[(msg.topic, msg.partition)] = msg.offset + 1
                        continue
                started = time.perf_counter()
                async with self.checkpoint.record():  # a checkpoint is captured between records, not inside one
                    out = await self.checkpoint.steps(
                        ingest.stepwise(ev.value, msg.topic, msg.partition, msg.offset, msg.timestamp))
                    if out.newest_t is not None:
                        self.observer.event_time(stream, out.newest_t)
                    await self.send_alerts(out.alerts)
                    await self.send_reports(out.reports)
                    for dead in out.dead:
                        await self.send_dead(stream, msg, dead)
                    counters["EVENTS_READ"].inc(out.read)
                    if out.held:
                        metrics.EVENTS_HELD.labels(stream).inc(out.held)
                    counters["EVENTS_REFUSED"].inc(out.refused)
                    if task is not None:
                        task.meta["applied"] = msg.offset
                        task.touch()
                counters["RECORDS"].inc()
                counters["EVENTS"].inc(out.events)
                self.observer.events(stream, out.kinds)
                self.processed[(msg.topic, msg.partition)] = msg.offset + 1
                if msg.timestamp:
                    counters["LATENCY"].observe(max(0.0, time.time() - msg.timestamp))
                # under a backlog the stream never waits: yield once a record, so that the commit timer (the
                # checkpoint) runs on time and the repartition topics' agents work while the inputs drain; while a
                # checkpoint is written, encode a share of it and give its sends the loop (Checkpoint.pace)
                await self.checkpoint.pace(time.perf_counter() - started)

        process.__name__ = f"process_{stream}"
        process.__doc__ = f"Validate {stream} records ({KEY_FIELD[stream]} keys one entity to a partition) and detect."
        return process

    def _group_agent(self, group: str) -> Any:
        """The agent of a repartition topic: envelopes of re-keyed events → the group's detectors."""
        stream = self.plan.group_stream[group]
        receiver = self.plan.receivers[group]
        forwarded = metrics.FORWARDED.labels(group)
        durable = self.settings.worker.durable_state

        async def process(records: faust.StreamT) -> None:
            async for ev in records.events():
                msg = ev.message
                if durable and msg.partition not in receiver.tasks:
                    await self.checkpoint.ensure_restored(group, msg.partition, self.app.consumer.assignment())
                started = time.perf_counter()
                async with self.checkpoint.record():
                    try:
                        envelope = orjson.loads(ev.value)
                        alerts = await self.checkpoint.steps(receiver.stepwise(msg.partition, envelope))
                    except Exception as e:  # written by a worker of another version, or damaged
                        log.error("%s[%d]@%d: unreadable envelope: %s", msg.topic, msg.partition, msg.offset, e)
                        envelope, alerts = None, []
                        receiver.failures.append(e)
                    await self.send_alerts(alerts)
                    await self.send_reports(receiver.take_reports())
                    while receiver.failures:
                        f = receiver.failures.pop(0)
                        reason = "detector_error" if envelope is not None else "bad_envelope"
                        log.error("%s failed on %s[%d]@%d: %s", group, msg.topic, msg.partition, msg.offset, f)
                        await self.send_dead(stream, msg, DeadLetter(ev.value, reason, str(f)))
                if envelope is not None:
                    forwarded.inc(len(envelope.get("events", ())))
                self.processed[(msg.topic, msg.partition)] = msg.offset + 1
                await self.checkpoint.pace(time.perf_counter() - started)  # as the input agents do

        process.__name__ = f"process_{group.replace('-', '_')}"
        process.__doc__ = f"Run the detectors re-keyed as {group} over the events forwarded to them."
        return process

    def caught_up(self, topic: str, partition: int) -> bool:
        """Whether this worker has processed an owned partition to its log end (its high watermark as of the last
        fetch): its re-keyed events have all gone out, and the receivers need not wait for it."""
        key = (topic, partition)
        position = self.processed.get(key, self.positions.get(key))
        try:
            high = self.app.consumer.highwater(TP(topic, partition))
        except Exception:  # noqa: BLE001 — not fetched yet, or being revoked: not known to be caught up
            return False
        return position is not None and high is not None and position >= high

    async def _reference_read(self, wait_s: float) -> None:
        """Wait, once, until the reference topics are read to their end (Kafka Streams bootstraps a global table
        before it processes): a claim is judged against the beneficiaries published before it."""
        if self.reference_ready.is_set():
            return
        try:
            await asyncio.wait_for(self.reference_ready.wait(), wait_s)
        except asyncio.TimeoutError:
            log.error("the reference topics were not read to their end in %.0f s; judging input without waiting "
                      "(see the reference follower's error above; raise [worker] reference_wait_s on a slow "
                      "cluster)", wait_s)
            self.reference_ready.set()

    # -- tasks and timers

    def _services(self) -> None:
        app = self.app
        app.task(self.mark_up)
        app.task(self.follow_reference)
        app.on_partitions_assigned.connect(self.on_assignment)
        app.on_before_shutdown.connect(self.on_shutdown)
        app.timer(interval=30.0)(self.reconcile)
        app.timer(interval=5.0)(self.report_lag)
        app.timer(interval=1.0)(self.read_positions)
        app.timer(interval=heap.RELEASE_EVERY_S)(self.release_heap)
        if self.plan.rekeying:
            app.task(self.forwarding)

    async def forwarding(self) -> None:
        """:meth:`forward` every :data:`FORWARD_EVERY_S`, counted from the end of the last send. (A Faust timer
        warned that it was "overlapping" every time a send took longer than its interval — under any backlog, a
        line or more a second in the worker's log.)"""
        while True:
            await asyncio.sleep(FORWARD_EVERY_S)
            await self.forward()

    async def forward(self) -> None:
        """The re-keyed events go out between checkpoints too (:meth:`Checkpoint.forward`)."""
        producer = getattr(self.app.producer, "_producer", None)
        if producer is not None:
            await self.checkpoint.forward(producer)

    async def mark_up(self) -> None:
        metrics.UP.set(1)
        self.observer.refresh()

    async def follow_reference(self) -> None:
        """Every worker reads the reference topics whole (stock, beneficiaries, watch lists)."""
        topics = self.settings.reference_topics()

        async def refused(table: str, record: Any, e: Any) -> None:
            dead = DeadLetter(record.value, e.reason, e.detail)
            await self.dead_topic.send(key=record.key, value=record.value, force=True,
                                       headers=dead.headers(record.topic, record.partition, record.offset))
            metrics.INVALID.labels(table, e.reason).inc()
            log.warning("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, e.reason)

        def counted(table: str, ok: bool) -> None:
            metrics.REFERENCE_RECORDS.labels(table, "applied" if ok else "refused").inc()
            metrics.REFERENCE_KEYS.labels(table).set(len(self.plan.reference[table]))

        while True:  # a missing or forbidden topic must not stop the worker: say so, and try again
            try:
                await reference.follow(self.settings.kafka, topics, self.plan.reference, refused, counted,
                                       self.reference_ready)
            except Exception as e:  # noqa: BLE001 — reference data only enriches alerts
                log.error("cannot follow the reference topics %s (%s: %s); alerts go out without the stock "
                          "until it works — retrying in 30 s", ", ".join(topics.values()), type(e).__name__, e)
                await asyncio.sleep(30)

    async def on_shutdown(self, sender: Any, **_: Any) -> None:
        """Stop the checkpoint's transactional producer (a stopped worker's last checkpoint has committed)."""
        await self.checkpoint.close()

    async def on_assignment(self, sender: Any, assigned: Any, **_: Any) -> None:
        """Faust's eager rebalancing hands over the whole new assignment each time."""
        self.checkpoint.on_assignment(assigned)
        for name, keys in self.checkpoint.keys().items():
            metrics.STATE_KEYS.labels(name).set(keys)
        owned = Counter(tp.topic for tp in assigned)
        for topic in self.consumed.values():
            metrics.ASSIGNED.labels(topic).set(owned.get(topic, 0))
        metrics.REBALANCES.inc()
        now_owned = {(tp.topic, tp.partition) for tp in assigned}
        for key in set(self.processed) - now_owned:
            self.processed.pop(key, None)
        self.positions.clear()
        for key in self.reported - now_owned:
            self.reported.discard(key)
            _forget_lag(*key)

    async def read_positions(self) -> None:
        """The consumer's position in each owned input partition nothing has come from yet (an empty one, or one
        read to its end before this assignment): what :meth:`caught_up` compares with the high watermark. (And the
        agents' back-pressure waits, into their counter.)"""
        metrics.BACKPRESSURE.inc(self.checkpoint.waited - self.backpressure_counted)
        self.backpressure_counted = self.checkpoint.waited
        for tp in self.app.consumer.assignment():
            key = (tp.topic, tp.partition)
            if tp.topic in self.inputs.values() and key not in self.processed:
                try:
                    position = await self.app.consumer.position(tp)
                except Exception:  # noqa: BLE001 — being revoked: asked again next second
                    continue
                if position is not None:
                    self.positions[key] = position

    async def reconcile(self) -> None:
        """Every record read ends as events judged or refused: the counters must agree."""
        check_accounting(self.inputs)

    async def release_heap(self) -> None:
        """Hand the C heap's free pages back (:mod:`streams.worker.heap`): a burst's buffers leave them behind."""
        metrics.heap_released(*heap.release())

    async def report_lag(self) -> None:
        """Consumer lag per owned partition: high watermark − next offset to process."""
        self.observer.refresh()
        consumer = self.app.consumer
        owned = [tp for tp in consumer.assignment() if tp.topic in self.consumed.values()]
        if not owned:
            return
        try:
            highwaters = await consumer.highwaters(*owned)
        except Exception as e:  # the broker may be away for a moment; report on the next tick
            log.info("could not read high watermarks: %s", e)
            return
        for tp, high in highwaters.items():
            position = self.processed.get((tp.topic, tp.partition))
            if position is None:
                try:
                    position = await consumer.position(tp)
                except Exception as e:  # given up by a rebalance since the high watermarks were read (a timer that
                    # raises stops the worker: seen when a broker's death moved the partitions mid-call)
                    log.info("could not read the position of %s[%d]: %s", tp.topic, tp.partition, e)
                    continue
            if position is not None and high is not None:
                metrics.LAG.labels(tp.topic, str(tp.partition)).set(max(0, high - position))
                self.reported.add((tp.topic, tp.partition))


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


def state_gap(stream: str, topic: str, partition: int, meta: dict[str, Any], first: int) -> int:
    """The records a partition's restored state never applied, seen at the first record read after the restore
    (``first``, the group's committed offset): none when the state is at or past it (the records it has applied are
    skipped), ``first - applied - 1`` when it is behind. A checkpoint commits offsets only after the state that
    covers them, so a gap means a checkpoint landed after a newer one — written late by a worker the group had
    already dropped — and the detectors of that partition missed those records: an ERROR line and
    ``zhijian_state_gaps_total``. (The input topics are written without transactions: their offsets have no holes.)

    >>> state_gap("telemetry", "zhijian.telemetry", 3, {"applied": 41}, 42)
    0
    >>> state_gap("telemetry", "zhijian.telemetry", 3, {}, 42)  # no state yet: nothing to compare
    0
    """
    applied = meta.get("applied", -1)
    missed = first - applied - 1 if applied >= 0 else 0
    if missed > 0:
        metrics.STATE_GAPS.labels(stream).inc()
        log.error("%s[%d]: the restored state has applied records up to offset %d, but the group had committed %d: "
                  "%d records were never applied to it (a checkpoint written late by a worker the group had dropped)",
                  topic, partition, applied, first, missed)
    return max(missed, 0)


def create_app(settings: Settings) -> faust.App:
    """The worker's Faust app with its agents, tasks and timers."""
    return Worker(settings).app


def run_worker(settings: Settings) -> int:
    """Run the worker until SIGINT/SIGTERM; returns the exit code."""
    Path(settings.worker.datadir).mkdir(parents=True, exist_ok=True)
    log.info("pseudonymization key id %s (alerts carry it as pseudonym_key_id)", Pseudonymizer.from_env().key_id)
    metrics.serve(settings.worker.metrics_host, settings.worker.metrics_port)
    heap.configure()
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.worker.log_level, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as e:
        return int(e.code or 0)
    return 0
