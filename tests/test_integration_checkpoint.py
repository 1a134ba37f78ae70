"""A checkpoint is written whole or not at all, on the real broker.

The kill evaluation (seed 7, two workers, one killed every 20 s) once lost two `claim.split_admission` alerts: a
worker was killed between the slices of a large checkpoint. The runtime's own record (the last input offset it
applied) had gone out in the first slice, most keys had not: the restore believed those records applied, skipped
them, and the patients' first stays were never remembered. Here a checkpoint of 5,000 keys (three slices) dies
after its first slice, its transaction left open as a SIGKILL leaves it; the next owner must restore the
checkpoint before it — every key and the runtime's record of the same moment — once the broker has aborted the
dead one, and a checkpoint written to the end must be restored whole.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from connectors.kafka.topics import changelog_name
from models.contracts.alert import Source
from models.engine.detector import KeyedDetector
from models.engine.runtime import PartitionedRuntime
from streams.worker import checkpoint as checkpoint_module
from streams.worker.checkpoint import SLICE, Checkpoint, _send, record_key
from tests.kafka_helpers import broker_with_topics

APP = "zhijian-checkpoint-test"
STORE, TOPIC = "telemetry", "zhijian.telemetry"
KEYS = 5000  # more than two slices


class Count(KeyedDetector):
    name, version, stream, key, key_field, Limits = "test.count", "1", "telemetry", "device", "device_id", dict
    retention_s = 30 * 86400.0

    def process(self, ctx: Any, event: dict[str, Any], source: Source) -> list[Any]:
        ctx.state["n"] = ctx.state.get("n", 0) + 1
        return []


def store() -> PartitionedRuntime:
    return PartitionedRuntime([Count()])


def feed(runtime: PartitionedRuntime, offset: int) -> None:
    """One event for every key at input offset ``offset`` (partition 0), and the runtime's record of it."""
    task = runtime.task(0)
    for i in range(KEYS):
        task.process({"device_id": f"F{i:05d}", "_t": 1_790_000_000.0 + offset}, Source(TOPIC, 0, offset, f"e{i}"))
    task.meta["applied"] = offset
    task.touch()


def counts(runtime: PartitionedRuntime) -> tuple[int, set[int]]:
    task = runtime.task(0)
    return task.meta.get("applied", -1), {task.store_of("test.count", f"F{i:05d}")["n"] for i in range(KEYS)}


def fed_checkpoint(broker: Any, offset: int) -> tuple[PartitionedRuntime, Checkpoint, list[Any]]:
    """A store fed one event for every key at ``offset``, its checkpoint, and the list its reports go to."""
    live, reports = store(), []
    cp = Checkpoint(broker.connection, {STORE: live}, {STORE: TOPIC}, APP, report=reports.append)
    feed(live, offset)
    return live, cp, reports


async def restored(broker: Any) -> PartitionedRuntime:
    """What a new owner of partition 0 restores from the changelog."""
    heir = store()
    await Checkpoint(broker.connection, {STORE: heir}, {STORE: TOPIC}, APP).restore(STORE, [0])
    return heir


class FaustProducer:
    """What the worker's consumer hands the checkpoint: flush() and the aiokafka producer beneath (unused here)."""
    _producer = None

    async def flush(self) -> None:
        return None


def offsets_committer(offset: int) -> tuple[list[int], Any]:
    """The offset commit a checkpoint calls last, and the list of what it committed."""
    committed: list[int] = []

    async def commit_offsets() -> bool:
        committed.append(offset)
        return True

    return committed, commit_offsets


@pytest.fixture
def own_broker(tmp_path):
    with broker_with_topics(tmp_path / "broker.log", app_id=APP) as b:
        yield b


def test_a_checkpoint_killed_half_way_is_not_restored_and_a_whole_one_is(own_broker, monkeypatch):
    monkeypatch.setattr(checkpoint_module, "TRANSACTION_TIMEOUT_MS", 4000)  # the broker aborts the dead one soon

    async def run() -> None:
        live = store()
        cp = Checkpoint(own_broker.connection, {STORE: live}, {STORE: TOPIC}, APP)
        feed(live, 10)
        await cp.write(None, cp.capture())  # checkpoint 1: every key at 1, applied 10
        feed(live, 20)
        # checkpoint 2 dies after its first slice: the transaction stays open, as after a SIGKILL
        _, [(changelog, partition, capture)] = cp.capture()
        assert changelog == changelog_name(APP, STORE) and partition == 0
        first = capture.slice(SLICE)
        assert len(first) == SLICE and first[0][0] == "_runtime"  # the runtime's record goes in the first slice
        dying = await cp.state_producer()
        await dying.begin_transaction()
        await asyncio.gather(*await _send(dying, changelog, 0, [(record_key(d, k), v) for d, k, v in first]))
        cp._state_producer = None  # abandoned, neither committed nor aborted

        started = time.monotonic()
        heir = await restored(own_broker)
        waited = time.monotonic() - started
        assert counts(heir) == (10, {1}), "a half-written checkpoint must not be restored"
        assert waited >= 2.0, f"the restore read at once ({waited:.1f} s), before the open transaction ended"

        # the same changes, written to the end by a live producer, are restored whole
        feed(live, 30)
        cp2 = Checkpoint(own_broker.connection, {STORE: live}, {STORE: TOPIC}, APP)
        live.task(0)._capture = None  # the dead checkpoint's capture is gone with it
        live.task(0)._dirty |= {(0, f"F{i:05d}") for i in range(KEYS)}
        await cp2.write(None, cp2.capture())
        await cp2.close()
        await dying.stop()
        again = await restored(own_broker)
        assert counts(again) == (30, {3})

    asyncio.run(run())


def test_a_checkpoint_the_broker_times_out_is_written_again_before_the_offsets_are_committed(own_broker, monkeypatch):
    """A checkpoint transaction slower than its timeout (a starved 2-core machine once took 24 s in CI) is aborted
    and fenced by the broker. The worker must neither crash nor commit offsets past state that is not written: the
    same captured keys go out again with a fresh producer, the offsets are committed after that, and the
    changelog restores the checkpoint whole — with nothing of the refused transaction counted twice."""
    monkeypatch.setattr(checkpoint_module, "TRANSACTION_TIMEOUT_MS", 2000)
    real_send, slow = checkpoint_module._send, {"calls": 0}

    async def slow_send(producer: Any, topic: str, partition: int, records: list[Any]) -> list[Any]:
        slow["calls"] += 1
        sent = await real_send(producer, topic, partition, records)
        if slow["calls"] == 1:  # the first attempt's transaction, open with its records in it: 4.5 s, past 2 s
            await asyncio.sleep(4.5)
        return sent

    monkeypatch.setattr(checkpoint_module, "_send", slow_send)

    async def run() -> None:
        live, cp, reports = fed_checkpoint(own_broker, 10)
        first = await cp.state_producer()
        committed, commit_offsets = offsets_committer(10)

        assert await cp.commit(FaustProducer(), commit_offsets) is True and committed == [10]
        kinds = [r.kind for r in reports]
        assert kinds == ["checkpoint_retried", "checkpoint"], kinds
        assert reports[-1].records == KEYS + 1  # every key and the runtime's record, once
        assert cp._state_producer is not first  # the refused producer was dropped
        await cp.close()
        heir = await restored(own_broker)
        assert counts(heir) == (10, {1})

    asyncio.run(run())


def test_a_checkpoint_whose_producer_cannot_find_its_coordinator_waits_and_is_written(own_broker, monkeypatch):
    """aiokafka gives up finding a transactional producer's coordinator when the connection to it closes (a broker
    killed mid-request): ``start()`` raises ``KafkaError``. A worker crashed on it in the broker-fault run (CI,
    2026-12-07). The checkpoint must wait and try again with a fresh producer, then write the state whole and only
    then commit the offsets — and stop every producer that failed to start."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError, KafkaError

    monkeypatch.setattr(checkpoint_module, "RETRY_FIRST_S", 0.05)
    made: list[Any] = []

    class LosingCoordinator(AIOKafkaProducer):
        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            self.stopped = False
            made.append(self)

        async def start(self) -> None:
            if len(made) <= 2:  # the first two producers lose the connection while finding their coordinator
                raise KafkaError(repr(KafkaConnectionError("Connection at 127.0.0.1:9 closed")))
            await super().start()

        async def stop(self) -> None:
            self.stopped = True
            await super().stop()

    monkeypatch.setattr(checkpoint_module, "AIOKafkaProducer", LosingCoordinator)

    async def run() -> None:
        live, cp, reports = fed_checkpoint(own_broker, 3)
        committed, commit_offsets = offsets_committer(3)

        assert await cp.commit(FaustProducer(), commit_offsets) is True and committed == [3]
        assert [r.kind for r in reports] == ["checkpoint_retried", "checkpoint_retried", "checkpoint"]
        assert len(made) == 3 and made[0].stopped and made[1].stopped and cp._state_producer is made[2]
        await cp.close()
        heir = await restored(own_broker)
        assert counts(heir) == (3, {1})

    asyncio.run(run())


def test_a_checkpoint_gives_up_after_its_retry_time_and_commits_no_offset(own_broker, monkeypatch):
    """A coordinator that never comes back: the broker's error after ``WRITE_RETRY_S``, and no offset committed."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    monkeypatch.setattr(checkpoint_module, "RETRY_FIRST_S", 0.05)
    monkeypatch.setattr(checkpoint_module, "WRITE_RETRY_S", 0.5)

    class NeverStarts(AIOKafkaProducer):
        async def start(self) -> None:
            raise KafkaError("KafkaConnectionError('Connection at 127.0.0.1:9 closed')")

    monkeypatch.setattr(checkpoint_module, "AIOKafkaProducer", NeverStarts)

    async def run() -> None:
        live = store()
        cp = Checkpoint(own_broker.connection, {STORE: live}, {STORE: TOPIC}, APP)
        feed(live, 1)
        committed, commit_offsets = offsets_committer(1)

        started = time.monotonic()
        with pytest.raises(KafkaError, match="Connection at 127.0.0.1:9 closed"):
            await cp.commit(FaustProducer(), commit_offsets)
        assert committed == [] and 0.2 < time.monotonic() - started < 5

    asyncio.run(run())


def test_a_checkpoint_of_a_worker_dropped_from_its_group_is_not_written(own_broker):
    """The fence against a checkpoint written late: a worker the group has dropped may not know it yet, while its
    partitions' new owners restore them; its checkpoint must not land after theirs. Before it commits, the
    transaction asks the group coordinator whether the member the worker was at the capture is still listed.
    Here a real consumer is the worker's member: a checkpoint while it is in the group is written; once it has left
    (as when the coordinator drops it), the next is refused with the reason, aborted, and commits no offset."""
    from aiokafka import AIOKafkaConsumer

    from streams.worker.checkpoint import GroupMembershipLost

    async def run() -> None:
        consumer = AIOKafkaConsumer(TOPIC, **own_broker.connection.aiokafka(), group_id=APP)
        await consumer.start()
        try:
            deadline = time.monotonic() + 60
            while not consumer.assignment():
                assert time.monotonic() < deadline, "the consumer never joined its group"
                await consumer.getmany(timeout_ms=200)
            member = consumer._coordinator.member_id
            assert member
            live = store()
            cp = Checkpoint(own_broker.connection, {STORE: live}, {STORE: TOPIC}, APP, member=lambda: member)
            feed(live, 5)
            committed, commit_offsets = offsets_committer(5)
            assert await cp.commit(FaustProducer(), commit_offsets) is True and committed == [5]
        finally:
            await consumer.stop()  # it leaves the group: its id is no longer listed, as after being dropped
        feed(live, 6)
        committed, commit_offsets = offsets_committer(6)
        with pytest.raises(GroupMembershipLost, match=f"dropped from consumer group {APP}"):
            await cp.commit(FaustProducer(), commit_offsets)
        assert committed == []
        await cp.close()
        heir = await restored(own_broker)
        assert counts(heir) == (5, {1})  # the first checkpoint, not the refused one

    asyncio.run(run())
