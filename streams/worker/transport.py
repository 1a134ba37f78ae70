"""A Faust transport whose worker consumer uses a configurable fetch wait.

faust-streaming hard-codes ``fetch_max_wait_ms=1500`` for the worker's aiokafka consumer.
Apache Kafka answers a fetch as soon as data arrives, so the wait only bounds idle polling; a
broker that holds every fetch for the full wait (Tansu, the project's first embedded broker, did)
would add ~0.7 s to every alert's latency. Kept configurable for brokers that behave like that.
Its producer also writes the detector state checkpoints before each offset commit (see
:mod:`streams.worker.checkpoint`). Registered as the URL scheme ``zhijian-kafka://``.
"""
from __future__ import annotations

from typing import Any

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver

#: Set from the settings before the app starts (``[worker] fetch_max_wait_ms``).
FETCH_MAX_WAIT_MS = 100
#: Set by the app: writes the detector state changed since the last checkpoint (streams.worker.checkpoint.Checkpointer).
CHECKPOINT: Any = None
CHECKPOINT_BOUNDARY: Any = None  # the lock the agents hold while they handle a record (streams.worker.checkpoint.BOUNDARY)
SCHEME = "zhijian-kafka"


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by the Fetcher created at start()
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Producer(driver.Producer):
    async def flush(self) -> None:
        """Faust flushes its producer right before every offset commit: the changed detector state goes
        to the changelogs there, in batches, and is acknowledged before the offsets are committed."""
        if CHECKPOINT is None or self._producer is None:
            await super().flush()
            return
        async with CHECKPOINT_BOUNDARY:  # between two records: no record half-handled
            captured = CHECKPOINT.capture()
        await super().flush()  # the alerts of the captured state are acknowledged first
        await CHECKPOINT.write(self._producer, captured)


class Transport(driver.Transport):
    Consumer = _Consumer
    Producer = _Producer


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
