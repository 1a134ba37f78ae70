"""Durable detector state and re-keying at the offset commit: the worker's :class:`Checkpoint`.

Kafka Streams' and quixstreams' way: state per key in a store, flushed to a changelog at the checkpoint,
recovered on assignment. The whole commit protocol is :meth:`Checkpoint.commit`, which the worker's Faust
consumer calls instead of committing the offsets itself (:mod:`streams.worker.transport`):

1. **capture**, between two records (the agents hold :attr:`Checkpoint.boundary` while they handle a record
   and send what it caused), in O(1) per store: the set of keys changed since the last checkpoint (encoded
   later, in slices, while the agents run on — a key about to change is encoded first, copy on write), each runtime's own record (its
   watermark, the last input offset it applied, its sources), and the envelopes the forwarders hold for the
   repartition topics (:mod:`models.engine.rekey`);
2. **flush** the producer: every alert sent so far is acknowledged — so every alert of the captured state is
   on the alert topic;
3. **write** the envelopes to the repartition topics and wait for them, then the changes to
   ``<app id>-<name>-state-changelog`` (partition = the partition the state belongs to), encoded first, then
   in record batches in **one Kafka transaction** of the checkpoint's own transactional producer, sent beside the
   agents (they give the loop a turn every few milliseconds meanwhile, so that it never outlives its timeout on a
   busy loop: :meth:`Checkpoint.steps`): a worker killed half-way through a
   checkpoint of a hundred thousand keys leaves no half of it behind (the runtime's own record — the last input
   offset applied — and the keys it speaks for are read together or not at all); before it commits, the group
   coordinator must still list the worker's member id of the capture (:meth:`Checkpoint._confirm`: a worker the
   group has dropped writes nothing over its partitions' new owners);
4. **commit** the offsets Faust chose before step 1, which are never ahead of the captured state.

After a kill the new owner **restores** a partition's state from its changelog before the partition's first
record (:meth:`Checkpoint.ensure_restored`, which the agent awaits) — ``read_committed``, once no transaction is
open on those partitions (a killed worker's is aborted by the broker after :data:`TRANSACTION_TIMEOUT_MS`) — and
skips the records the restored state
has already applied (their alerts and envelopes went out before the checkpoint was written): state and
forwarding see each record once, and alerts are at-least-once with deterministic ids. On a rebalance, revoked
partitions' state is dropped (:meth:`Checkpoint.on_assignment`; their new owner restores it).

One record per changed key per commit, not per event: a key touched by a thousand events in a second is
written once. What each checkpoint and restore did is handed to ``report`` (the worker turns it into metrics).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.client import CoordinationType
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.admin import DescribeGroupsRequest

from connectors.kafka.connection import KafkaConnection
from connectors.kafka.follower import TopicFollower
from connectors.kafka.topics import changelog_name, repartition_name
from models.engine.rekey import Rekeying
from models.engine.runtime import Steps

log = logging.getLogger(__name__)
SEP = "\x1f"  # between detector name and key in a changelog record's key
#: A checkpoint's transaction is aborted by the broker this long after it began if its worker died: until then
#: the changelog partitions it wrote to cannot be restored (a checkpoint after a burst takes a few seconds)
TRANSACTION_TIMEOUT_MS = 20_000
#: How long a restore waits for open transactions on its changelog partitions to end before it reads what is
#: committed anyway (the broker's abort of a dead worker's transaction, plus its clean-up interval)
SETTLE_TIMEOUT_S = 90.0
#: How long one checkpoint's transaction is tried again (a fresh producer each time, waits doubling from
#: :data:`RETRY_FIRST_S` to :data:`RETRY_MAX_S` between tries) before the worker gives up and stops with the
#: broker's error. Longer than a broker's failover (the cluster notices a dead broker in 6 s, then elects new
#: leaders); well under Faust's rebalance timeout (60 s): a revocation waits for the checkpoint being written
#: (Faust commits before it gives partitions up), and a member that has not rejoined by then is dropped from the
#: group while its write goes on, so an old checkpoint could land after its partitions' new owner had written one
WRITE_RETRY_S = 30.0
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0


class GroupMembershipLost(RuntimeError):
    """The group no longer lists the member this worker was when it captured a checkpoint: its partitions may have a
    new owner, whose state the checkpoint must not overwrite."""


class DeliveryFailed(RuntimeError):
    """A send the checkpoint must cover (an alert, a report, a dead letter, an envelope) was refused for good: no
    checkpoint may say its record was handled."""


def record_key(detector: str, key: str) -> bytes:
    return f"{detector}{SEP}{key}".encode()


@dataclass
class Report:
    """What one checkpoint or restore did."""

    kind: str  # "checkpoint", "checkpoint_retried" (a refused transaction written again) or "restore"
    records: int = 0  # changelog records written or read
    seconds: float = 0.0
    keys: dict[str, int] | None = None  # store name → keys it holds now
    restored: str = ""  # the store restored, and its partitions
    partitions: tuple[int, ...] = ()
    pause: float = 0.0  # how long the capture held the agents (a checkpoint)


class Checkpoint:
    """The commit protocol of one worker over its stores (name — a stream or a re-keyed group — → its
    PartitionedRuntime or PartitionedReceiver) and its forwarders (stream → Rekeying)."""

    def __init__(self, conn: KafkaConnection, stores: dict[str, Any], store_topics: dict[str, str], app_id: str,
                 rekeying: dict[str, Rekeying] | None = None, durable: bool = True,
                 report: Callable[[Report], None] = lambda report: None,
                 caught_up: Callable[[str, int], bool] = lambda topic, partition: False,
                 member: Callable[[], str | None] = lambda: None) -> None:
        self.conn = conn
        self.all_stores = stores
        self.stores = stores if durable else {}  # nothing checkpointed or restored when not durable
        self.durable = durable
        self.store_topics = store_topics  # name → the topic its state follows (an input or a repartition topic)
        self.changelogs = {name: changelog_name(app_id, name) for name in stores}
        self.rekeying = rekeying or {}
        self.repartition = {group: repartition_name(app_id, group) for r in self.rekeying.values() for group in r.groups}
        self.report = report
        #: whether an input partition is read to its log end: its forwarders then tell the receivers it is idle
        self.caught_up = caught_up
        #: the worker's member id in its consumer group now ("" once dropped, None outside a group): see _confirm
        self.member = member
        self._group_node: int | None = None  # the group coordinator's node, looked up at the first confirmation
        #: held by an agent while it handles one record and sends what it caused: the state is captured only
        #: between records, so a captured state never holds a record whose alerts are not yet sent
        self.boundary = asyncio.Lock()
        #: held from cutting envelopes until they are all handed to the producer, by the forwarding timer and by
        #: the checkpoint: a receiver skips an event not past the last one it applied from that source, so an
        #: envelope overtaken by a later one of the same source would be lost (tests/test_forwarding_order.py)
        self.sending = asyncio.Lock()
        self.app_id = app_id
        self._state_producer: Any = None  # the transactional producer of the changelogs, started at first use
        self.waited = 0.0  # seconds the agents have waited in pace() for sends to end, since the start
        self.torn = False  # an agent was stopped inside a record (tear)
        #: the captures being encoded, each with its records so far: [changelog, partition, capture, records]
        self._encoding: list[list[Any]] = []
        #: set while no checkpoint is being taken and no envelopes are being sent (see pace)
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._busy = 0
        #: the first send refused for good since the start (see watch): no checkpoint is written after it
        self.lost: BaseException | None = None

    @contextlib.asynccontextmanager
    async def record(self) -> AsyncIterator[None]:
        """Held by an agent while it handles one record and sends what it caused (:attr:`boundary`). An agent
        stopped inside it (cancelled as the worker stops, between two of the record's steps or in a send) may
        leave part of the record applied or its alerts unsent: :meth:`tear`."""
        async with self.boundary:
            try:
                yield
            except asyncio.CancelledError:
                self.tear()
                raise

    async def steps(self, steps: Steps) -> Any:
        """Take a record's steps (``Ingest.stepwise``, ``PartitionedReceiver.stepwise``), giving the loop a turn
        between two while a checkpoint or a forward is under way: a record of hundreds of events then holds the
        loop a few milliseconds at a time instead of tens, so the checkpoint's transaction goes on beside the
        agents instead of holding them (:meth:`_write_state`). Other agents wait meanwhile (:attr:`boundary`)."""
        quiet = self._quiet.is_set
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value
            if not quiet():
                await asyncio.sleep(0)

    def watch(self, delivery: Any) -> None:
        """The future of a send whose loss no checkpoint may cover: an alert, a report or a dead letter (the worker's
        sends) or an envelope. aiokafka retries what can heal (a leader moving, a broker away) and fails the future
        only for what cannot — a refused ACL, a record too large, an expired batch — and Faust only logs it, while
        the producer's flush returns all the same. Such a failure stops every later checkpoint (:meth:`_commit`
        raises :class:`DeliveryFailed`): the worker stops, and its successor reads the records again from the
        last checkpoint, instead of one that says they were handled while their alert never reached the topic."""
        delivery.add_done_callback(self._delivered)

    def _delivered(self, delivery: Any) -> None:
        error = None if delivery.cancelled() else delivery.exception()
        if error is not None and self.lost is None:
            self.lost = error
            log.error("a send was refused for good (%s: %s): no checkpoint will be written after it",
                      type(self.lost).__name__, self.lost)

    def tear(self) -> None:
        """An agent was stopped inside a record: the state may hold part of it, and its alerts may not all be sent,
        so no checkpoint may capture it from now on (the worker is stopping; the next owner restores the last
        checkpoint and reads the record again, as after a kill)."""
        if not self.torn:
            log.warning("stopped inside a record: no further checkpoint is written by this worker")
        self.torn = True

    async def state_producer(self) -> Any:
        """The checkpoint's own transactional producer (one per worker process; its id is unique, so a restarted
        worker never fences a live one, and a dead one's open transaction is aborted by the broker's timeout)."""
        if self._state_producer is None:
            producer = AIOKafkaProducer(**self.conn.aiokafka(),
                                        transactional_id=f"{self.app_id}-checkpoint-{uuid.uuid4().hex[:16]}",
                                        transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
                                        max_batch_size=512 * 1024, linger_ms=5, max_request_size=4 * 1024 * 1024)
            try:
                await producer.start()  # finds the transaction coordinator: fails while a broker fails over
            except BaseException:
                await _quietly(producer.stop())
                raise
            self._state_producer = producer
        return self._state_producer

    async def close(self) -> None:
        producer, self._state_producer = self._state_producer, None
        if producer is not None:
            await producer.stop()

    async def commit(self, producer: Any, commit_offsets: Callable[[], Awaitable[bool]]) -> bool:
        """One checkpoint and offset commit, in this order (see the module): capture, flush, write, commit.

        The capture holds the agents (between two records, O(1) per store: it takes the set of changed keys); the
        keys are encoded in slices while the agents run on, each key encoded before an agent changes it
        (:class:`models.engine.runtime.Capture`); the transaction that sends them runs beside the agents. An agent
        stopped inside a record before (:meth:`tear`) leaves nothing more to write."""
        with self._io():
            return await self._commit(producer, commit_offsets)

    @contextlib.contextmanager
    def _io(self) -> Iterator[None]:
        """While a checkpoint or the forwarders' sends are under way: the agents pace themselves (:meth:`pace`)."""
        self._busy += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._busy -= 1
            if not self._busy:
                self._quiet.set()

    async def _commit(self, producer: Any, commit_offsets: Callable[[], Awaitable[bool]]) -> bool:
        if self.torn:
            return False  # see tear(): nothing after it is written, offsets included
        async with self.sending:
            async with self.boundary:
                paused = time.perf_counter()
                captured = self.capture()
                member = self.member()  # who the worker was in its group when the state was captured
                pause = time.perf_counter() - paused
            try:
                await producer.flush()
                if self.lost is not None:  # every send of the captured records has ended: was one refused?
                    raise DeliveryFailed(
                        f"a send was refused by Kafka ({type(self.lost).__name__}: {self.lost}), so no checkpoint "
                        "may cover its record: the worker stops, and the next one reads the records again from the "
                        "last checkpoint; fix the cause (the topic's ACLs, message.max.bytes) and restart it"
                    ) from self.lost
                await self.write(producer._producer, captured, pause, member)
            except BaseException:
                for _, _, capture in captured[1]:
                    capture.abort()  # the next checkpoint writes these keys again
                raise
        return await commit_offsets()

    async def forward(self, producer: Any) -> int:
        """Send what the forwarders hold now, between checkpoints (the worker does every 0.1 s): a re-keyed
        detector then sees an event within a fraction of a second instead of at the next commit. Safe at any
        time: receivers apply each forwarded event once (by its offsets); :attr:`sending` keeps this and the
        checkpoint from interleaving their envelopes (a checkpoint being written holds this send back until it is
        done); and the checkpoint's flush waits for these sends before it writes the state that says their
        records were applied."""
        async with self.sending:
            async with self.boundary:
                forward = self._forward()
            if not forward:
                return 0
            with self._io():
                pending, sent = await _send_envelopes(producer, forward)
            for delivery in pending:  # acknowledged before the next checkpoint (its flush), or it stops
                self.watch(delivery)
        return sent

    def capture(self) -> tuple[list[tuple[str, int, list[Any]]], list[tuple[str, int, Any]]]:
        """(topic, partition, envelopes) to forward and (changelog, partition, capture) of the state changes;
        call between two records."""
        out = []
        for name, store in self.stores.items():
            for partition, task in list(store.tasks.items()):
                out.append((self.changelogs[name], partition, task.capture()))
        return self._forward(), out

    def _forward(self) -> list[tuple[str, int, list[Any]]]:
        forward: list[tuple[str, int, list[Any]]] = []
        for stream, rekeying in self.rekeying.items():
            per_target: dict[tuple[str, int], list[Any]] = {}
            topic = self.store_topics[stream]
            for group, target, envelope in rekeying.flush(lambda p, topic=topic: self.caught_up(topic, p)):
                per_target.setdefault((self.repartition[group], target), []).append(envelope)
            forward += [(topic, p, envelopes) for (topic, p), envelopes in per_target.items()]
        return forward

    async def write(self, producer: Any, captured: tuple[list[Any], list[Any]], pause: float = 0.0,
                    member: str | None = None) -> int:
        """The envelopes first, then the state: a state that says a record was applied is never on the
        changelog before what the record forwarded (a kill between the two forwards it again, and the
        receiver knows its offsets). Encoded a slice at a time, yielding to the agents between slices.

        The state goes in one transaction: a checkpoint is written whole or not at all. (Without one, a worker
        killed between the slices of a large checkpoint left the runtime's record — written first — saying its
        records were applied while half of the keys still held the checkpoint before: the restore skipped those
        records, and the kill evaluation lost two split-admission alerts.)"""
        started = time.perf_counter()
        forward, changes = captured
        pending, written = await _send_envelopes(producer, forward)
        if pending:
            await asyncio.gather(*pending)  # forwarded before the state that says so
        records_out = 0
        if any(not capture.done for _, _, capture in changes):
            records_out = await self._write_state(changes, member)
        if records_out:
            self.report(Report("checkpoint", records_out, time.perf_counter() - started, self.keys(),
                               pause=pause))
        return written + records_out

    async def _write_state(self, changes: list[tuple[str, int, Any]], member: str | None = None) -> int:
        """The captured keys of every store, in one transaction of :meth:`state_producer`.

        The keys are encoded first, a slice at a time while the agents run on; then the transaction is opened
        and sent, the agents running beside it. Its producer takes many small steps, each waiting for the loop:
        while whole records were handled in one go, under a backlog on a starved 2-core machine one step took a
        fifth of a second, a checkpoint 24–27 s, past :data:`TRANSACTION_TIMEOUT_MS`, and the worker crashed; then
        the agents were held (between two records) while the transaction was open, 40–60 ms on average and up to
        160 ms. Now an agent gives the loop a turn every :data:`~models.engine.runtime.STEP_EVENTS` events while a
        checkpoint is under way (:meth:`steps`), and the transaction needs no hold. A
        transaction the broker refuses (timed out, fenced, its coordinator or a leader lost with a broker), or a
        producer that cannot start (aiokafka gives up finding the transaction coordinator when its connection
        closes: a worker crashed on it while a broker was killed in CI), is written again, whole, by a fresh
        producer — after 0.2 s, then waits doubling to 5 s, for up to :data:`WRITE_RETRY_S`; the offsets wait for
        it. (Returning "not committed" to Faust instead stalls the group for good: Faust has already taken the
        acknowledged offsets off its list and waits for a gap that never closes.) An authorization error is
        raised at once: a missing ACL does not heal by trying again."""
        self._encoding = [[topic, partition, capture, []] for topic, partition, capture in changes]
        try:
            while not self.encode(SLICE_S):
                await asyncio.sleep(0)  # the agents run on between slices (and encode some themselves: pace)
        finally:
            encoding, self._encoding = self._encoding, []
        encoded = [(topic, partition, records) for topic, partition, _, records in encoding if records]
        records_out = sum(len(records) for _, _, records in encoded)
        if not records_out:
            return 0
        give_up, wait, attempt = time.monotonic() + WRITE_RETRY_S, RETRY_FIRST_S, 1
        while True:
            producer = None
            try:
                producer = await self.state_producer()  # a lost coordinator fails its start: tried again too
                await producer.begin_transaction()
                pending = []
                for topic, partition, records in encoded:
                    pending += await _send(producer, topic, partition, records)
                await asyncio.gather(*pending)
                if member is not None:
                    await self._confirm(producer, member)  # its partitions are in the open transaction by now
                await producer.commit_transaction()  # acknowledged before the offsets are committed
                return records_out
            except BaseException as e:
                await self._discard(producer)
                if (time.monotonic() + wait > give_up or not isinstance(e, KafkaError)
                        or "Authorization" in type(e).__name__):
                    raise
                attempt += 1
                log.warning("checkpoint transaction refused (%s: %s); writing it again with a fresh producer in "
                            "%.1f s (attempt %d)", type(e).__name__, e, wait, attempt)
                self.report(Report("checkpoint_retried", records_out))
            await asyncio.sleep(wait)
            wait = min(wait * 2, RETRY_MAX_S)

    async def _confirm(self, producer: Any, member: str) -> None:
        """Raise :class:`GroupMembershipLost` unless the group coordinator still lists ``member``, the member this
        worker was when it captured the checkpoint — asked while the transaction is open, just before its commit.

        The fence against a checkpoint written late. A worker the group has dropped (its session expired while the
        coordinator was away) does not know it until its next heartbeat, and meanwhile its partitions' new owners
        restore them; if its transaction opened after such a restore and committed after the owner's own
        checkpoint, the changelog would end with the older state while the group's offsets are the owner's, and
        the next restore would never apply the records between (``zhijian_state_gaps_total``). A new owner gets
        a partition only once a rebalance has completed without the dropped member, and aiokafka gives a dropped
        member a new id when it joins again; so if the coordinator still lists the id, no owner has restored
        since, and a restore that comes later waits for this open transaction and reads what it commits. (A
        revocation commits its last checkpoint before the member joins again, still listed.) The check is one
        round trip to the coordinator, beside the agents; a coordinator that cannot answer is a refused
        transaction (written again)."""
        client = producer.client
        if self._group_node is None:
            self._group_node = await client.coordinator_lookup(CoordinationType.GROUP, self.app_id)
        try:
            response = await client.send(self._group_node, DescribeGroupsRequest([self.app_id]))
            [group] = response.groups
            if group[0]:
                raise for_code(group[0])(f"describing group {self.app_id}")
        except BaseException:
            self._group_node = None  # look the coordinator up again next time: it may have moved
            raise
        members = {m[0] for m in group[5]}
        if not member or member not in members:
            log.error("this worker (member %r) is no longer in group %s (members now: %d): its checkpoint is not "
                      "written, and the worker stops; its partitions' new owners carry on from their own",
                      member, self.app_id, len(members))
            raise GroupMembershipLost(
                f"the worker was dropped from consumer group {self.app_id} (member {member!r} not among its "
                f"{len(members)} members) while a checkpoint was being written: the checkpoint is not written, "
                "since its partitions may have new owners; the worker stops, and a restarted one joins again")

    def encode(self, budget_s: float) -> bool:
        """Encode the captured keys of the checkpoint being written for about ``budget_s``; whether all are.

        Safe at any time between two records, or while an agent awaits a send inside one: a key an agent is
        about to change is encoded first (copy on write), so every record is the captured state."""
        end = time.perf_counter() + budget_s
        for _, _, capture, records in self._encoding:
            while not capture.done:
                records += [(record_key(d, k), v) for d, k, v in capture.slice(KEYS_PER_STEP)]
                if time.perf_counter() >= end:
                    return False
        return True

    async def pace(self, worked_s: float) -> None:
        """An agent's turn between two records, after one that took it ``worked_s``: a yield to the loop, and while
        a checkpoint is being taken or envelopes are being sent, the agent's share of it and back-pressure.

        Under a backlog every agent holds the loop for a whole record (tens of milliseconds for a record of
        hundreds of events) and yields once; each step of a checkpoint — a slice of keys encoded, a batch handed to
        the producer, a reply read — then waited for every agent's turn, a few hundred milliseconds. After the
        bench's burst one checkpoint took 7–12 s that way, the next one waited as long for the forwarders' sends,
        and every key changed meanwhile stayed a Python object (1.4 GiB). So while a checkpoint is taken or
        envelopes are sent, an agent encodes as long as its record took (at most :data:`SLICE_S`), then waits for
        the sends to end, up to :data:`PACE_MAX_S`, leaving the loop to them: back-pressure from the broker to the
        agents. (Waiting only 20 ms left the loop as busy as before — the agents are not in step, so one of them
        always held it — and a forward of 63,000 events still took 6.7 s.) After the burst, checkpoints come every
        1.5 s and take 0.2–0.5 s, and the peak RSS is 0.5 GiB instead of 1.1–1.4; the agents give up about a
        tenth of their throughput for it. Since records are handled a step at a time and give the loop a turn
        between steps while a checkpoint is under way (:meth:`steps`), the sends no longer wait for whole records,
        and the wait is at most 50 ms (it was 0.25 s). The time they wait is counted (:attr:`waited`)."""
        if self._quiet.is_set():
            await asyncio.sleep(0)
            return
        if self._encoding:
            self.encode(min(worked_s, SLICE_S))
        waited = time.perf_counter()
        try:
            await asyncio.wait_for(self._quiet.wait(), PACE_MAX_S)
        except asyncio.TimeoutError:
            pass
        self.waited += time.perf_counter() - waited

    async def _discard(self, producer: Any) -> None:
        """Abort a failed transaction at once (a restore of its partitions waits for it to end; if the abort fails
        the broker's timeout does it) and drop its producer: the next write starts a fresh one. (None: the producer
        failed to start, and :meth:`state_producer` has stopped it.)"""
        self._state_producer = None
        if producer is None:
            return
        await _quietly(producer.abort_transaction())
        await _quietly(producer.stop())

    def keys(self) -> dict[str, int]:
        return {name: len(store) for name, store in self.all_stores.items()}

    async def ensure_restored(self, name: str, partition: int, assignment: Any) -> list[int]:
        """Before a partition's first record is processed: restore it, and every other owned partition of the
        store not restored yet, from the changelog (one read for all of them); the partitions restored. The agent
        calls it only for a partition it has no state task for, so the hot path pays a dict look-up."""
        store = self.stores.get(name)
        if store is None:
            return []
        started = time.perf_counter()
        topic = self.store_topics[name]
        owned = sorted({tp.partition for tp in assignment if tp.topic == topic} | {partition})
        new = [p for p in owned if p not in store.tasks]
        read = await self.restore(name, new)
        seconds = time.perf_counter() - started
        self.report(Report("restore", read, seconds, self.keys(), name, tuple(new)))
        log.info("%s: restored partitions %s from %d changelog records in %.2f s", name, new, read, seconds)
        return new

    async def restore(self, name: str, partitions: list[int]) -> int:
        """Read the changelog partitions of ``partitions`` into fresh runtimes; return the records read."""
        store = self.stores[name]
        for p in partitions:
            store.tasks.pop(p, None)
            store.task(p)
        if not partitions:
            return 0

        def load(record: Any) -> None:
            detector, _, key = record.key.decode().partition(SEP)
            store.task(record.partition).load(detector, key, None if record.value is None else orjson.loads(record.value))

        topic = self.changelogs[name]
        async with TopicFollower(self.conn, [topic], {topic: partitions}, isolation_level="read_committed") as follower:
            if not await follower.settle(SETTLE_TIMEOUT_S):
                log.error("%s: a transaction on changelog partitions %s stayed open %.0f s; restoring what is "
                          "committed (raise the broker's transaction clean-up if this recurs)", name, partitions,
                          SETTLE_TIMEOUT_S)
            return await follower.read_to_end(load)

    def on_assignment(self, assigned: Any) -> None:
        """Drop the state of revoked partitions, and their forwarders: their new owner restores it. (New
        partitions are restored by the agent before their first record: Faust may deliver records before this
        signal has run.)"""
        for name, store in self.all_stores.items():
            owned = {tp.partition for tp in assigned if tp.topic == self.store_topics[name]}
            store.drop([p for p in list(store.tasks) if p not in owned])
        for stream, r in self.rekeying.items():
            owned = {tp.partition for tp in assigned if tp.topic == self.store_topics[stream]}
            r.drop([p for _, p in list(r.forwarders) if p not in owned])
            r.own(owned)  # an empty partition's forwarders too: the receivers learn it is idle


#: Envelopes encoded between two yields to the agents while they are sent (a few ms of work).
SLICE = 2000
#: The longest a checkpoint's encoding holds the agents at one time (the writer's slice, or an agent's share).
SLICE_S = 0.02
#: The longest an agent waits between two records for a checkpoint or a forward to end (:meth:`Checkpoint.pace`):
#: no checkpoint stops an agent longer than this at a time.
PACE_MAX_S = 0.05
#: Keys encoded between two looks at the clock.
KEYS_PER_STEP = 100


async def _quietly(step: Awaitable[Any]) -> None:
    """A clean-up step after a failed write, given 5 s; its own error is dropped (the write's is the one that
    counts)."""
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(step, 5.0)


async def _send_envelopes(producer: Any, forward: list[tuple[str, int, list[Any]]]) -> tuple[list[Any], int]:
    """The forwarders' envelopes, encoded here (they are never changed once flushed) a slice at a time and sent as
    record batches, yielding to the agents between slices; the futures of their acknowledgements, and how many."""
    pending: list[Any] = []
    written = 0
    for topic, partition, envelopes in forward:
        for i in range(0, len(envelopes), SLICE):
            records = [(b"", orjson.dumps(e)) for e in envelopes[i:i + SLICE]]
            pending += await _send(producer, topic, partition, records)
            written += len(records)
            await asyncio.sleep(0)
    return pending, written


async def _send(producer: Any, topic: str, partition: int, records: list[tuple[bytes, bytes | None]]) -> list[Any]:
    """Records as batches straight on the underlying aiokafka producer (a few µs a record; Faust's per-message
    path costs far more, and a checkpoint after a burst holds one record per key touched); the futures of their
    acknowledgements."""
    pending = []
    batch = producer.create_batch()
    for k, v in records:
        if batch.append(key=k, value=v, timestamp=None) is None:  # full: send it, start another
            batch.close()
            pending.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            batch.append(key=k, value=v, timestamp=None)
    batch.close()
    pending.append(await producer.send_batch(batch, topic, partition=partition))
    return pending
