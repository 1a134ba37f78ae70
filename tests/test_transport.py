"""The worker's Faust transport hands each fetched message to its callback without tasks (streams.worker.transport):
the answer is the one Faust's own ``wait_first`` gives, whether the callback completes at once, suspends, fails,
or is left behind when the flow is suspended."""
from __future__ import annotations

import asyncio
import inspect
import warnings

import pytest
from mode import Service
from mode.utils.locks import Event

from streams.worker.transport import eager_first


class _Service(Service):
    async def on_start(self) -> None:
        pass


async def _with_service(body):
    service = _Service()
    await service.start()
    try:
        return await body(service)
    finally:
        await service.stop()


def run(body):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine never awaited (the one not needed) would warn
        return asyncio.run(_with_service(body))


def test_a_callback_that_does_not_wait_is_answered_without_starting_the_other() -> None:
    delivered = []

    async def callback(message):
        delivered.append(message)
        return message

    others = []

    async def body(service):
        flow = Event()
        out = []
        for i in range(3):
            others.append(flow.wait())
            out.append(await eager_first(callback(i), others[-1], service.wait_first))
        return out

    results = run(body)
    assert [r.results for r in results] == [[0], [1], [2]] and delivered == [0, 1, 2]
    assert not any(r.stopped for r in results)
    assert all(inspect.getcoroutinestate(o) == inspect.CORO_CLOSED for o in others)  # closed, never run


def test_a_callback_that_suspends_goes_on_as_a_task_and_is_awaited() -> None:
    steps = []

    async def callback(message, gate):
        steps.append("put")
        await asyncio.sleep(0)           # a bare yield
        value = await gate               # a future, set later
        steps.append("after")
        return message, value

    async def body(service):
        gate = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, gate.set_result, "open")
        return await eager_first(callback("m", gate), Event().wait(), service.wait_first)

    result = run(body)
    assert result.results == [("m", "open")] and steps == ["put", "after"]


def test_a_callback_stuck_while_the_flow_is_suspended_is_left_and_cancelled() -> None:
    seen = []

    async def callback(gate):
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def body(service):
        loop = asyncio.get_running_loop()
        gate, suspend = loop.create_future(), Event()
        loop.call_later(0.01, suspend.set)
        result = await eager_first(callback(gate), suspend.wait(), service.wait_first)
        await asyncio.sleep(0.01)
        return result, gate

    result, gate = run(body)
    assert result.results == [True]                            # the flow's event won
    assert seen == ["cancelled"] and gate.cancelled()          # what the callback waited on is cancelled with it


@pytest.mark.parametrize("suspends", [False, True])
def test_a_callback_that_fails_raises_its_error(suspends: bool) -> None:
    async def callback():
        if suspends:
            await asyncio.sleep(0)
        raise ValueError("bad message")

    async def body(service):
        return await eager_first(callback(), Event().wait(), service.wait_first)

    with pytest.raises(ValueError, match="bad message"):
        run(body)
