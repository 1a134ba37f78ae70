"""A record is handled a step at a time (``Ingest.stepwise``, ``Receiver.stepwise``), and the worker gives its loop a
turn between two steps while a checkpoint is under way (``Checkpoint.steps``), so that the checkpoint's transaction
runs beside the agents instead of holding them. The steps give the same outcome as the whole record at once; an
agent stopped between two of them leaves no checkpoint behind it. No broker."""
from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from models.contracts.alert import Source
from models.engine.detector import KeyedDetector
from models.engine.rekey import Forwarder, Receiver
from models.engine.runtime import STEP_EVENTS, Runtime, run_to_end
from streams.worker.checkpoint import Checkpoint
from streams.worker.ingest import Ingest
from tests.test_ingest import PSEUDO, example


class Count(KeyedDetector):
    """Counts readings per device and alerts on every tenth."""

    name, version, stream, key, key_field, Limits = "demo.count", "1", "telemetry", "device", "device_id", dict
    fields = ("device_id",)

    def process(self, ctx: Any, event: dict[str, Any], source: Source) -> list[Any]:
        ctx.state["n"] = ctx.state.get("n", 0) + 1
        return [f"{ctx.key} #{ctx.state['n']}"] if ctx.state["n"] % 10 == 0 else []


def readings(n: int) -> bytes:
    events = []
    for i in range(n):
        e = example("telemetry", device_id=f"FR-{i % 3}")
        e["event_time"] = f"2026-11-24T03:{i // 60:02d}:{i % 60:02d}+08:00"
        events.append(e)
    return orjson.dumps(events)


def test_a_record_handled_a_step_at_a_time_gives_what_it_gives_at_once() -> None:
    raw = readings(3 * STEP_EVENTS + 5)
    whole = Ingest("telemetry", [Runtime([Count()])], PSEUDO).handle(raw, "zhijian.telemetry", 0, 7)
    steps, yields = Ingest("telemetry", [Runtime([Count()])], PSEUDO).stepwise(raw, "zhijian.telemetry", 0, 7), 0
    while True:
        try:
            next(steps)
            yields += 1
        except StopIteration as done:
            stepped = done.value
            break
    assert yields == 3  # after every STEP_EVENTS events, none after the last
    assert stepped.alerts == whole.alerts and len(whole.alerts) == 9  # 101 readings of 3 devices: #10, #20, #30 each
    assert (stepped.events, stepped.read, stepped.dead) == (whole.events, whole.read, whole.dead)


def test_an_envelope_received_a_step_at_a_time_gives_what_it_gives_at_once() -> None:
    forwarder = Forwarder([Count()], "zhijian.telemetry", 0, 1)
    for i in range(2 * STEP_EVENTS + 1):
        forwarder.add({"device_id": f"FR-{i % 2}", "_t": 1_790_000_000.0 + i}, Source("zhijian.telemetry", 0, i, f"R{i}"))
    [(_, envelope)] = forwarder.flush(idle=True)
    whole = Receiver([Count()], sources=1).receive(envelope)
    steps = Receiver([Count()], sources=1).stepwise(envelope)
    assert sum(1 for _ in iter(lambda: next(steps, StopIteration), StopIteration)) == 2
    assert run_to_end(Receiver([Count()], sources=1).stepwise(envelope)) == whole and len(whole) == 6  # 33 and 32


def _checkpoint() -> Checkpoint:
    return Checkpoint(None, {}, {}, "zhijian")  # type: ignore[arg-type]


def _steps(n: int, log: list[str]):
    for i in range(n):
        log.append(f"step {i}")
        yield
    return "done"


@pytest.mark.parametrize("busy", [False, True])
def test_the_loop_gets_a_turn_between_steps_only_while_a_checkpoint_is_under_way(busy: bool) -> None:
    async def run() -> list[str]:
        cp, log = _checkpoint(), []
        if busy:
            cp._quiet.clear()  # a checkpoint's sends are under way

        async def other() -> None:
            log.append("other task")

        task = asyncio.ensure_future(other())
        assert await cp.steps(_steps(3, log)) == "done"
        await task
        return log

    log = asyncio.run(run())
    if busy:
        assert log.index("other task") == 1  # right after the first step
    else:
        assert log[-1] == "other task"       # the record went through in one go


def test_an_agent_stopped_between_two_steps_leaves_no_checkpoint_behind() -> None:
    async def run() -> tuple[bool, bool, list[str]]:
        cp, log = _checkpoint(), []
        cp._quiet.clear()
        committed = []

        async def agent() -> None:
            async with cp.record():
                await cp.steps(_steps(1000, log))

        task = asyncio.ensure_future(agent())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async def commit_offsets() -> bool:
            committed.append("offsets")
            return True

        result = await cp.commit(None, commit_offsets)
        return cp.torn, result or bool(committed), log

    torn, wrote, log = asyncio.run(run())
    assert 0 < len(log) < 1000   # stopped inside the record
    assert torn and not wrote     # nothing captured, no offsets committed after it
