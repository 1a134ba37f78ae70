"""A send refused for good stops every later checkpoint: no state or offset may say a record was handled while
one of its alerts, reports, dead letters or envelopes never reached its topic.

aiokafka retries what can heal (a leader moving, a broker away) and fails a send's future only for what cannot —
a refused ACL, a record too large, an expired batch. Faust only logs that, and its producer's flush returns all the
same, so before this the next checkpoint committed the record's state and offsets and the alert was lost for good.
No broker: the producers are stand-ins, and a refused send never reaches a state producer.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import TopicAuthorizationFailedError

from models.contracts.alert import Source
from models.engine.detector import KeyedDetector
from models.engine.rekey import Rekeying
from models.engine.runtime import PartitionedRuntime
from streams.worker.checkpoint import Checkpoint, DeliveryFailed


class PerInstitution(KeyedDetector):
    name, version, stream, key, key_field, Limits = "demo.count", "1", "claim", "institution", "institution_id", dict

    def process(self, ctx: Any, event: dict[str, Any], source: Source) -> list[Any]:
        ctx.state["n"] = ctx.state.get("n", 0) + 1
        return []


class Producer:
    """Faust's producer as the checkpoint sees it (flush, and the aiokafka producer beneath); every batch sent
    is acknowledged, or refused with ``refuse``."""

    def __init__(self, refuse: BaseException | None = None) -> None:
        self._producer = self
        self.refuse = refuse
        self.batches = 0

    async def flush(self) -> None:
        await asyncio.sleep(0)

    def create_batch(self) -> Any:
        return Batch()

    async def send_batch(self, batch: Any, topic: str, partition: int) -> asyncio.Future[None]:
        self.batches += 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(
            done.set_exception if self.refuse else done.set_result, self.refuse)  # type: ignore[arg-type]
        return done


class Batch:
    def append(self, key: bytes, value: bytes, timestamp: Any) -> object:
        return object()

    def close(self) -> None:
        pass


def refused(error: BaseException) -> asyncio.Future[Any]:
    sent: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    sent.set_exception(error)
    return sent


def checkpoint(**kw: Any) -> tuple[Checkpoint, PartitionedRuntime]:
    runtime = PartitionedRuntime([PerInstitution()])
    # no connection: a checkpoint that got as far as writing its state would fail on it
    return Checkpoint(None, {"claim": runtime}, {"claim": "zhijian.claims"}, "zhijian", **kw), runtime  # type: ignore[arg-type]


def test_a_refused_alert_stops_the_checkpoint_before_any_state_or_offset() -> None:
    async def run() -> None:
        cp, runtime = checkpoint()
        runtime.task(0).process({"institution_id": "H1", "_t": 1.0}, Source("zhijian.claims", 0, 0, "C1"))
        committed: list[bool] = []

        async def commit_offsets() -> bool:
            committed.append(True)
            return True

        ok: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        ok.set_result("metadata")
        gone: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        gone.cancel()  # a send cancelled as the worker stops is not a refusal
        for sent in (ok, gone, refused(TopicAuthorizationFailedError("zhijian.alerts"))):
            cp.watch(sent)
        await asyncio.sleep(0)  # done callbacks run on the loop
        with pytest.raises(DeliveryFailed, match=r"refused by Kafka \(TopicAuthorizationFailedError.*fix the cause"):
            await cp.commit(Producer(), commit_offsets)
        assert committed == []
        # the captured keys stay changed: nothing was written, and the next attempt is refused the same way
        with pytest.raises(DeliveryFailed):
            await cp.commit(Producer(), commit_offsets)
        assert committed == [] and runtime.task(0).store_of("demo.count", "H1") == {"n": 1}

    asyncio.run(run())


def test_acknowledged_and_cancelled_sends_let_the_checkpoint_through() -> None:
    async def run() -> None:
        cp = Checkpoint(None, {}, {}, "zhijian")  # type: ignore[arg-type]
        ok: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        ok.set_result("metadata")
        gone: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        gone.cancel()
        cp.watch(ok)
        cp.watch(gone)
        await asyncio.sleep(0)

        async def commit_offsets() -> bool:
            return True

        assert await cp.commit(Producer(), commit_offsets) is True and cp.lost is None

    asyncio.run(run())


def test_a_refused_envelope_of_the_forwarding_timer_stops_the_next_checkpoint() -> None:
    async def run() -> None:
        rekeying = Rekeying("zhijian.claims", {"claim-by-institution": [PerInstitution()]}, partitions=2)
        rekeying.own([0])
        cp = Checkpoint(None, {}, {"claim": "zhijian.claims"}, "zhijian", rekeying={"claim": rekeying})  # type: ignore[arg-type]
        rekeying.process({"institution_id": "H1", "_t": 1.0, "event_time": "2026-10-01T10:00:00+08:00"},
                         Source("zhijian.claims", 0, 0, "C1"))
        producer = Producer(refuse=TopicAuthorizationFailedError("zhijian-claim-by-institution-repartition"))
        assert await cp.forward(producer) >= 1 and producer.batches >= 1
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        committed: list[bool] = []

        async def commit_offsets() -> bool:
            committed.append(True)
            return True

        with pytest.raises(DeliveryFailed, match="TopicAuthorizationFailedError"):
            await cp.commit(Producer(), commit_offsets)
        assert committed == []

    asyncio.run(run())
