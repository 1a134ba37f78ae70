"""The worker's Faust transport (URL scheme ``zhijian-kafka://``): the aiokafka driver with two changes.

* **The offset commit is the checkpoint's.** Faust's consumer commits the offsets it has chosen after flushing
  its producer; this one hands that commit to :meth:`streams.worker.checkpoint.Checkpoint.commit` (the app's
  ``checkpoint``), which captures the detector state, flushes the alerts, writes the state and forwarded events
  and only then commits those offsets.
* **Each message handed over without tasks.** Faust's drain loop gives every fetched message to its callback through
  ``wait_first(callback(message), suspend_flow.wait())``: four tasks and an ``asyncio.wait`` per message (~30 µs,
  about 7 % of a worker at 2,000 events/s in records of one to three events), so that a callback stuck while the
  flow is suspended (a rebalance) can be left behind. The callback almost never waits; :func:`eager_first` runs it at
  once and takes that path only when it does.
* **A configurable fetch wait.** faust-streaming hard-codes ``fetch_max_wait_ms=1500`` for the worker's aiokafka
  consumer. Apache Kafka answers a fetch as soon as data arrives, so the wait only bounds idle polling; a broker
  that holds every fetch for the full wait (Tansu, the project's first embedded broker, did) would add ~0.7 s to
  every alert's latency. The app's ``fetch_max_wait_ms`` (``[worker] fetch_max_wait_ms``) sets it.
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Coroutine, Mapping

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver
from mode.services import WaitResults

SCHEME = "zhijian-kafka"


async def _resume(coro: Coroutine[Any, Any, Any], step: Any) -> Any:
    """Go on with a coroutine that took its first step outside a task and suspended on ``step`` (what it yielded:
    a future, or None for one turn of the loop), as an asyncio task would: wait until the future is done, then send
    the coroutine on (it reads the future's outcome itself); cancelled meanwhile, cancel the future and throw the
    cancellation into the coroutine."""
    while True:
        try:
            if step is None:
                await asyncio.sleep(0)
            else:
                step._asyncio_future_blocking = False  # as a task does before it waits on what it was given
                await asyncio.wait((step,))
        except asyncio.CancelledError as e:
            if step is not None:
                step.cancel()
            try:
                step = coro.throw(e)
            except StopIteration as done:
                return done.value
            continue
        try:
            step = coro.send(None)
        except StopIteration as done:
            return done.value


async def eager_first(first: Coroutine[Any, Any, Any], other: Coroutine[Any, Any, Any],
                      wait_first: Callable[..., Awaitable[Any]]) -> Any:
    """``wait_first(first, other)`` — whichever finishes first — with ``first`` run at once: when it completes
    without suspending (a message put on its stream's queue), that is the answer and ``other`` is never started;
    when it suspends, it goes on as a task and ``wait_first`` decides as before.

    >>> import asyncio
    >>> async def put(x):
    ...     return x
    >>> async def never():
    ...     await asyncio.Event().wait()
    >>> async def unused(*coros):
    ...     raise AssertionError("not needed")
    >>> asyncio.run(eager_first(put(7), never(), unused)).results
    [7]
    """
    try:
        step = first.send(None)
    except StopIteration as done:
        other.close()
        return WaitResults([first], [done.value], False)
    except BaseException:
        other.close()
        raise
    return await wait_first(asyncio.ensure_future(_resume(first, step)), other)


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

    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:
        """The drain loop's ``wait_first(callback(message), suspend_flow.wait())`` through :func:`eager_first`
        while the flow runs; every other wait as Faust's."""
        if (len(coros) == 2 and timeout is None and asyncio.iscoroutine(coros[0]) and asyncio.iscoroutine(coros[1])
                and not (self.suspend_flow.is_set() or self._stopped.is_set() or self._crashed.is_set())):
            return await eager_first(coros[0], coros[1], super().wait_first)
        return await super().wait_first(*coros, timeout=timeout)

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
