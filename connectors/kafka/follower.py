"""The topic follower 主题跟随: read topics from their beginning to the end they had, then keep following.

Every reader of a whole topic in zhijian is one of these: the worker's reference tables (a global table, read
before anything is judged) and the restore of its state (changelog partitions read to their end), the
workbench's alerts, grades and watch lists, the risk scorer's claims and alerts, the demo's live alert view and
the lab's read-backs. One aiokafka consumer with no consumer group: nothing is committed, a restarted reader
reads again from the beginning (or, ``from_end``, only what arrives after it started).

:class:`TopicFollower` is the asyncio form; :class:`Tail` runs one on a thread of its own for synchronous
programs (the demo's loop, the lab), and :func:`read_topics` reads topics whole once and returns their records.
"""
from __future__ import annotations

import asyncio
import inspect
import queue
import threading
import time
from typing import Any, AsyncIterator, Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors.errors import ZhijianError
from connectors.kafka.connection import KafkaConnection
from connectors.kafka.topics import partitions_of

Record = Any  # aiokafka's ConsumerRecord: topic, partition, offset, key, value, timestamp, headers


class TopicFollower:
    """Reads every partition of ``topics`` (or only ``partitions``: topic → partition numbers) from the beginning,
    or from the end with ``from_end``; :attr:`caught_up` once every partition has reached the end offset it had
    when :meth:`start` looked. Use as ``async with``."""

    def __init__(self, conn: KafkaConnection, topics: Iterable[str], partitions: dict[str, list[int]] | None = None,
                 from_end: bool = False, **consumer_options: Any) -> None:
        self.conn = conn
        self.topics = list(topics)
        self.partitions = partitions
        self.from_end = from_end
        self.options = {"max_partition_fetch_bytes": 8 * 1024 * 1024, **consumer_options}
        self.consumer: Any = None
        self.tps: list[Any] = []
        self.ends: dict[Any, int] = {}  # partition → its end offset when reading began
        self.caught_up = False

    async def start(self) -> "TopicFollower":
        """Connect and place every partition; raises :class:`ZhijianError` when a topic does not exist."""

        self.consumer = AIOKafkaConsumer(**self.conn.aiokafka(), group_id=None, enable_auto_commit=False,
                                         auto_offset_reset="earliest", **self.options)
        await self.consumer.start()
        try:
            for topic in self.topics:
                wanted = (self.partitions or {}).get(topic)
                numbers = wanted if wanted is not None else await partitions_of(self.consumer, topic)
                self.tps += [TopicPartition(topic, p) for p in numbers]
            self.consumer.assign(self.tps)
            self.ends = await self.consumer.end_offsets(self.tps) if self.tps else {}
            if self.from_end:
                for tp, end in self.ends.items():
                    self.consumer.seek(tp, end)
            elif self.tps:
                await self.consumer.seek_to_beginning(*self.tps)
            await self._check_caught_up()
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        if self.consumer is not None:
            consumer, self.consumer = self.consumer, None
            await consumer.stop()

    async def __aenter__(self) -> "TopicFollower":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def settle(self, timeout: float) -> bool:
        """For a ``read_committed`` follower: wait until no transaction is open on its partitions (the last stable
        offset has reached the high watermark), and read to there; False when ``timeout`` passed first (the ends
        are then the last stable offsets). A restore of a changelog a dead worker was writing to waits here for the
        broker to abort its transaction instead of reading a checkpoint that is behind the one to come."""
        if self.options.get("isolation_level") != "read_committed" or not self.tps:
            return True
        probe = AIOKafkaConsumer(**self.conn.aiokafka(), group_id=None, enable_auto_commit=False)
        await probe.start()
        try:
            deadline = time.monotonic() + timeout
            while True:
                stable = await self.consumer.end_offsets(self.tps)
                high = await probe.end_offsets(self.tps)
                self.ends = stable
                if all(stable[tp] >= high[tp] for tp in self.tps):
                    return True
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.25)
        finally:
            await probe.stop()

    async def _check_caught_up(self) -> None:
        if not self.caught_up:
            positions = [await self.consumer.position(tp) for tp in self.tps]
            self.caught_up = all(pos >= self.ends[tp] for tp, pos in zip(self.tps, positions))

    async def batches(self, timeout_ms: int = 1000, max_records: int | None = None) -> AsyncIterator[list[Record]]:
        """Batches of records in partition order, forever (an empty batch when nothing came within the timeout,
        so the caller can look at :attr:`caught_up` and its own clock)."""
        while True:
            fetched = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
            await self._check_caught_up()
            yield [r for records in fetched.values() for r in records]

    async def read_to_end(self, apply: Callable[[Record], Any]) -> int:
        """Hand every record up to the ends the partitions had at start to ``apply``; return how many."""
        read = 0
        pending = {tp for tp in self.tps if self.ends.get(tp, 0) > await self.consumer.position(tp)}
        while pending:
            fetched = await self.consumer.getmany(*pending, timeout_ms=1000)
            for tp, records in fetched.items():
                for r in records:
                    if r.offset < self.ends[tp]:
                        apply(r)
                        read += 1
            for tp in list(pending):
                if await self.consumer.position(tp) >= self.ends[tp]:
                    pending.discard(tp)
        self.caught_up = True
        return read

    async def follow(self, apply: Callable[[Record], Any], on_caught_up: Callable[[], Any] | None = None,
                     after_batch: Callable[[], Any] | None = None, timeout_ms: int = 1000) -> None:
        """Hand every record to ``apply`` (awaited when it returns an awaitable), forever; ``after_batch`` after
        each batch, ``on_caught_up`` once, when the ends the partitions had at start are reached."""
        told = False
        async for batch in self.batches(timeout_ms):
            for r in batch:
                done = apply(r)
                if inspect.isawaitable(done):
                    await done
            if after_batch is not None:
                after_batch()
            if self.caught_up and not told:
                told = True
                if on_caught_up is not None:
                    on_caught_up()


def read_topics(conn: KafkaConnection, topics: Iterable[str], partitions: dict[str, list[int]] | None = None
                ) -> list[Record]:
    """Every record of ``topics`` up to their ends now, in partition order (for synchronous programs)."""

    async def read() -> list[Record]:
        out: list[Record] = []
        async with TopicFollower(conn, topics, partitions) as follower:
            await follower.read_to_end(out.append)
        return out

    return asyncio.run(read())


class Tail:
    """A :class:`TopicFollower` on a thread of its own, for a synchronous loop: :meth:`poll` returns what has
    arrived. Raises in the constructor what :meth:`TopicFollower.start` raised (a topic that does not exist)."""

    def __init__(self, conn: KafkaConnection, topics: Iterable[str], from_end: bool = False) -> None:
        self._records: queue.Queue[Record] = queue.Queue()
        self._started: queue.Queue[BaseException | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(conn, list(topics), from_end),),
                                        name="zhijian-tail", daemon=True)
        self._thread.start()
        error = self._started.get()
        if error is not None:
            raise error

    async def _run(self, conn: KafkaConnection, topics: list[str], from_end: bool) -> None:
        follower = TopicFollower(conn, topics, from_end=from_end)
        try:
            await follower.start()
        except BaseException as e:  # noqa: BLE001 — handed to the constructor's thread
            self._started.put(e)
            return
        self._started.put(None)
        try:
            async for batch in follower.batches(timeout_ms=200):
                for r in batch:
                    self._records.put(r)
                if self._stop.is_set():
                    return
        finally:
            await follower.stop()

    def poll(self, timeout_ms: int = 200) -> list[Record]:
        """The records that arrived, waiting up to ``timeout_ms`` for the first."""
        out: list[Record] = []
        try:
            out.append(self._records.get(timeout=timeout_ms / 1000))
            while True:
                out.append(self._records.get_nowait())
        except queue.Empty:
            return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


async def follow_forever(conn: KafkaConnection, topics: Iterable[str], apply: Callable[[Record], Any], what: str,
                         log: Any, on_caught_up: Callable[[], Any] | None = None, retry_s: float = 30.0,
                         missing_ok: bool = False) -> None:
    """:meth:`TopicFollower.follow` that survives the broker: a missing topic or a lost connection is logged
    (``what`` names the data) and tried again after ``retry_s``; with ``missing_ok`` a missing topic ends it."""
    while True:
        try:
            async with TopicFollower(conn, topics) as follower:
                await follower.follow(apply, on_caught_up)
        except ZhijianError as e:
            if missing_ok:
                log.warning("no %s: %s", what, e)
                return
            log.error("cannot follow %s (%s); retrying in %.0f s", what, e, retry_s)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 — the broker may be away for a while
            log.error("cannot follow %s (%s: %s); retrying in %.0f s", what, type(e).__name__, e, retry_s)
        await asyncio.sleep(retry_s)
