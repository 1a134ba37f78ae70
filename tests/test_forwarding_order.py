"""Envelopes of one source reach each repartition partition in the order they were cut, whether the 0.1 s
forwarding timer or a checkpoint sends them, and however the producer interleaves the two.

A receiver skips a forwarded event whose (offset, index) is not past the last one it applied (that is how a
re-send after a kill counts once), so an envelope overtaken by a later one of the same source would be
dropped silently: a daily chart would then judge a day without some of its events, and two runs of the same
data would differ (the evaluate kill test once found one `prescription.excess_usage` alert a day early).
No broker: the producer is a stand-in that yields to the event loop inside every send, as aiokafka may.
"""
from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson

from models.contracts.alert import Source
from models.engine.detector import KeyedDetector
from models.engine.rekey import Rekeying
from streams.worker.checkpoint import Checkpoint


class PerInstitution(KeyedDetector):
    name, version, stream, key, key_field, Limits = "demo.count", "1", "claim", "institution", "institution_id", dict

    def process(self, ctx: Any, event: dict[str, Any], source: Source) -> list[Any]:
        return []


class YieldingProducer:
    """Appends records to ``log`` per (topic, partition) in the order they reach the accumulator, yielding to
    the loop a random number of times first (a metadata wait, a full buffer)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.log: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self._producer = self

    async def _yield(self) -> None:
        for _ in range(self.rng.randrange(3)):
            await asyncio.sleep(0)

    async def send(self, topic: str, value: bytes, partition: int) -> None:
        await self._yield()
        self.log.setdefault((topic, partition), []).append(orjson.loads(value))

    async def flush(self) -> None:
        await self._yield()

    def create_batch(self) -> Any:
        return Batch()

    async def send_batch(self, batch: "Batch", topic: str, partition: int) -> asyncio.Future[None]:
        await self._yield()
        self.log.setdefault((topic, partition), []).extend(orjson.loads(v) for _, v in batch.records)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Batch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []

    def append(self, key: bytes, value: bytes, timestamp: Any) -> object:
        self.records.append((key, value))
        return object()

    def close(self) -> None:
        pass


def test_timer_and_checkpoint_sends_keep_each_sources_order() -> None:
    async def run(seed: int) -> dict[tuple[str, int], list[dict[str, Any]]]:
        rekeying = Rekeying("zhijian.claims", {"claim-by-institution": [PerInstitution()]}, partitions=2)
        rekeying.own([0, 1, 2])
        cp = Checkpoint(None, {}, {"claim": "zhijian.claims"}, "zhijian", rekeying={"claim": rekeying})  # type: ignore[arg-type]
        producer = YieldingProducer(seed)

        async def commit_offsets() -> bool:
            return True

        async def feed() -> None:
            for offset in range(600):
                async with cp.boundary:
                    p = offset % 3
                    event = {"institution_id": f"H{offset % 7}", "_t": 1_790_000_000.0 + offset,
                             "event_time": "2026-10-01T10:00:00+08:00"}
                    rekeying.process(event, Source("zhijian.claims", p, offset, f"C{offset}"))
                await asyncio.sleep(0)

        async def timer() -> None:
            for _ in range(200):
                await cp.forward(producer)
                await asyncio.sleep(0)

        async def checkpoints() -> None:
            for _ in range(60):
                await cp.commit(producer, commit_offsets)
                for _ in range(3):
                    await asyncio.sleep(0)

        await asyncio.gather(feed(), timer(), checkpoints())
        await cp.forward(producer)
        return producer.log

    for seed in range(5):
        log = asyncio.run(run(seed))
        sent = 0
        for (topic, partition), envelopes in log.items():
            last: dict[int, tuple[int, int]] = {}
            marks: dict[int, float] = {}
            for env in envelopes:
                src = env["source"]
                for offset, index, *_ in env["events"]:
                    assert (offset, index) > last.get(src, (-1, -1)), (
                        f"seed {seed}: {topic}[{partition}] got source {src}'s event {offset} after a later one")
                    last[src] = (offset, index)
                    sent += 1
                if env["watermark"] is not None:
                    assert env["watermark"] >= marks.get(src, float("-inf")), f"seed {seed}: watermark went back"
                    marks[src] = env["watermark"]
        assert sent == 600 * 1  # every event reached its one target partition, once
