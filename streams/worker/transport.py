"""The worker's Faust transport (URL scheme ``zhijian-kafka://``): the aiokafka driver with two changes.

* **The offset commit is the checkpoint's.** Faust's consumer commits the offsets it has chosen after flushing
  its producer; this one hands that commit to :meth:`streams.worker.checkpoint.Checkpoint.commit` (the app's
  ``checkpoint``), which captures the detector state, flushes the alerts, writes the state and forwarded events
  and only then commits those offsets.
* **A configurable fetch wait.** faust-streaming hard-codes ``fetch_max_wait_ms=1500`` for the worker's aiokafka
  consumer. Apache Kafka answers a fetch as soon as data arrives, so the wait only bounds idle polling; a broker
  that holds every fetch for the full wait (Tansu, the project's first embedded broker, did) would add ~0.7 s to
  every alert's latency. The app's ``fetch_max_wait_ms`` (``[worker] fetch_max_wait_ms``) sets it.
"""
from __future__ import annotations

from typing import Any, Mapping

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver

SCHEME = "zhijian-kafka"


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait = getattr(self.app, "fetch_max_wait_ms", None)
        if wait is not None:
            consumer._fetch_max_wait_ms = wait  # read by the Fetcher created at start()
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _commit_offsets(self, offsets: Mapping[Any, int], start_new_transaction: bool = True) -> bool:
        checkpoint = getattr(self.app, "checkpoint", None)
        commit = super()._commit_offsets
        if checkpoint is None:
            return await commit(offsets, start_new_transaction)
        return await checkpoint.commit(self.app.producer, lambda: commit(offsets, start_new_transaction))


class _Producer(driver.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class Transport(driver.Transport):
    Consumer = _Consumer
    Producer = _Producer


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
