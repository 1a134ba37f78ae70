"""One answer for any layout: the re-keyed daily charts close each day only when every source partition is past it
or has nothing more to send — whatever order and speed the partitions are read in, however the workers share
them, whoever is killed (docs/state.md, "Idle sources").

The defect these reproduce (2026-11-28): while a worker caught up, one source partition ran two days of event time
ahead of another not yet heard from; the receiver's event-time "startup wait" then let the days close, the second
source's events of them arrived late and were not counted, and a waste chart learned another normal — so
``waste.generation_anomaly`` for H301 on 2026-10-23 came out in some layouts and not in others."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import cache

import orjson
import pytest

from models.contracts.alert import Source
from models.contracts.records import event_id, validate
from models.engine.conformance import Layout, reference
from models.engine.rekey import Forwarder, Receiver
from models.rules import registry
from models.rules.anomaly.cusum import Episode, GaussianCUSUM
from models.rules.anomaly.daily import DailyChart
from models.rules.waste.generation_anomaly import GenerationAnomalyDetector
from streams.lab.simulator import REGION_CONFIG, RegionSimulator, SimulationConfig
from streams.settings import load_settings

TZ = timezone(timedelta(hours=8))


class DayCount(DailyChart):
    """Reports every complete day's count of an institution's events."""

    name, version, stream, key, key_field, Limits = "test.day_count", "1", "waste", "institution", "institution_id", dict
    fields = ("institution_id", "event_time")
    grace_s = 3600.0

    def values(self, event):
        return {"n": 1}

    def new_chart(self):
        return Episode(GaussianCUSUM(), 5.0)

    def judge(self, ctx, chart, day, totals, evidence, now):
        return [(ctx.key, day, totals["n"])]


def event(day: int, hour: int) -> dict:
    t = datetime(2026, 10, day, hour, tzinfo=TZ)
    return {"institution_id": "H1", "event_time": t.isoformat(), "_t": t.timestamp()}


def test_a_source_days_ahead_closes_no_day_before_a_slow_source_is_heard():
    fast, slow = Forwarder([DayCount()], "zhijian.waste", 0, 1), Forwarder([DayCount()], "zhijian.waste", 1, 1)
    receiver = Receiver([DayCount()], sources=2)
    for offset, day in enumerate(range(1, 6)):  # source 0 reads five days before source 1 reads anything
        fast.add(event(day, 20), Source("zhijian.waste", 0, offset, f"F{day}"))
        assert [a for _, env in fast.flush() for a in receiver.receive(env)] == []  # source 1 unheard: none closes
    slow.add(event(1, 21), Source("zhijian.waste", 1, 0, "S1"))
    slow.add(event(2, 3), Source("zhijian.waste", 1, 1, "S2"))
    closed = [a for _, env in slow.flush() for a in receiver.receive(env)]
    assert closed == [("H1", "2026-10-01", 2)]  # its event of the 1st counted; the 2nd waits for it


def test_an_idle_source_holds_nobody_back_and_a_busy_one_does():
    busy, empty = Forwarder([DayCount()], "zhijian.waste", 0, 1), Forwarder([DayCount()], "zhijian.waste", 1, 1)
    receiver = Receiver([DayCount()], sources=2)
    for offset, day in enumerate(range(1, 4)):
        busy.add(event(day, 20), Source("zhijian.waste", 0, offset, f"B{day}"))
    assert [a for _, env in busy.flush() for a in receiver.receive(env)] == []
    # the second partition is read to its end and holds nothing: it says so, and the days close on the first alone
    assert [a for _, env in empty.flush(idle=True) for a in receiver.receive(env)] == [
        ("H1", "2026-10-01", 1), ("H1", "2026-10-02", 1)]
    # a source that was idle and reads again counts once more
    empty.add(event(3, 22), Source("zhijian.waste", 1, 0, "E3"))
    assert [a for _, env in empty.flush(idle=False) for a in receiver.receive(env)] == []
    assert receiver.watermark() == event(3, 20)["_t"]  # the slowest busy source's: the 3rd stays open


def test_a_source_whose_worker_died_after_saying_idle_still_holds_the_days():
    """The seed-7 kill run (2026-12-06): a waste partition read to its end said "idle"; its worker was killed; new
    records reached the partition while nobody read it, and the other sources ran days ahead. Left out as idle, it
    let those days close without its records, which then came late: eight generation anomalies the one-worker run
    did not have. A source that has sent events holds the days until its heir forwards what it missed."""
    first, other = Forwarder([DayCount()], "zhijian.waste", 0, 1), Forwarder([DayCount()], "zhijian.waste", 1, 1)
    receiver = Receiver([DayCount()], sources=2)
    first.add(event(1, 20), Source("zhijian.waste", 0, 0, "A1"))
    other.add(event(1, 21), Source("zhijian.waste", 1, 0, "B1"))
    assert [a for f in (first, other) for _, env in f.flush() for a in receiver.receive(env)] == []
    assert [a for _, env in first.flush(idle=True) for a in receiver.receive(env)] == []  # read to its end …
    # … and killed. Partition 0 gets its record of the 2nd; the other source reads on to the 4th
    for offset, day in enumerate((2, 3, 4), 1):
        other.add(event(day, 20), Source("zhijian.waste", 1, offset, f"B{day}"))
    assert [a for _, env in other.flush() for a in receiver.receive(env)] == []  # no day closes without source 0
    heir = Forwarder([DayCount()], "zhijian.waste", 0, 1)  # the heir reads what the dead worker never did
    heir.add(event(2, 19), Source("zhijian.waste", 0, 1, "A2"))
    closed = [a for _, env in heir.flush() for a in receiver.receive(env)]
    assert closed == [("H1", "2026-10-01", 2)]  # the 2nd waits for source 0 to pass it, with its record counted
    heir.add(event(4, 21), Source("zhijian.waste", 0, 2, "A4"))
    closed = [a for _, env in heir.flush() for a in receiver.receive(env)]
    assert closed == [("H1", "2026-10-02", 2), ("H1", "2026-10-03", 1)]


@cache
def waste_events(days: float = 20) -> list:
    """The evaluation's region (seed 7), its waste events as the worker reads them."""
    sim = RegionSimulator(SimulationConfig(seed=7, days=days))
    out = []
    for offset, (stream, _, e) in enumerate(sim.until(sim.t0 + days * 86400)):
        if stream == "waste":
            e = validate("waste", e)
            out.append((e, Source("zhijian.waste", 0, offset, event_id("waste", e))))
    return out


@pytest.mark.parametrize("schedule", range(8))
def test_the_waste_chart_of_the_evaluated_region_is_the_same_in_every_layout(schedule):
    limits = load_settings([str(REGION_CONFIG)], environ={}).detectors["waste.generation_anomaly"]

    def factory():
        return GenerationAnomalyDetector(limits)

    events = waste_events()
    want = reference(factory, events)
    assert ("waste.generation_anomaly" in {d for d, _, _ in want})  # the chart raised something to compare
    # 4 input partitions, 4 receivers: read one after another (0), at random speeds (even), with kills (odd)
    got = Layout(factory, events, registry.partition_key("waste"), 4, 4, schedule).run()
    assert got == want


def test_a_restored_snapshot_is_not_changed_by_the_runtime_that_restored_it():
    receiver = Receiver([DayCount()], sources=1)
    fwd = Forwarder([DayCount()], "zhijian.waste", 0, 1)
    fwd.add(event(1, 20), Source("zhijian.waste", 0, 0, "A"))
    for _, env in fwd.flush():
        receiver.receive(env)
    snapshot = orjson.loads(orjson.dumps(receiver.runtime.snapshot()))
    kept = orjson.dumps(snapshot)
    again = Receiver([DayCount()], sources=1)
    again.runtime.restore(snapshot)
    fwd.add(event(2, 20), Source("zhijian.waste", 0, 1, "B"))
    for _, env in fwd.flush():
        again.receive(env)
    assert orjson.dumps(snapshot) == kept  # restored twice after a second kill, it must say the same


def test_a_snapshot_shares_nothing_with_the_runtime_that_goes_on():
    """A receiver snapshotted before it had heard from anyone, then killed after it had: its restore must not see
    the sources heard since (the layout model's first saved snapshot once shared the live metadata, and a restored
    receiver skipped envelopes it had never applied — one schedule of the evaluated region lost three days of
    waste)."""
    receiver = Receiver([DayCount()], sources=1)
    early = receiver.runtime.snapshot()
    fwd = Forwarder([DayCount()], "zhijian.waste", 0, 1)
    fwd.add(event(1, 20), Source("zhijian.waste", 0, 0, "A"))
    envelopes = [env for _, env in fwd.flush()]
    for env in envelopes:
        receiver.receive(env)
    assert early["meta"] == {} and early["entries"] == []
    again = Receiver([DayCount()], sources=1)
    again.runtime.restore(early)
    for env in envelopes:  # the log read again from the start
        again.receive(env)
    assert again.runtime.snapshot()["entries"] == receiver.runtime.snapshot()["entries"]
