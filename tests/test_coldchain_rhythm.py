"""Cold chain without false alarms (issue 22): a fridge that follows the day — a smooth warm afternoon, clinic-hour
door openings, a defrost timer, noise — is normal operation, and `coldchain.abnormal_dynamics` stays within a
budget of one alarm per device-week on it, at 1-, 5- and 15-minute sampling and with gaps; so does every real
Berlinger export with readings in ../shared/data/coldchain. A real change on such a device (a failing compressor's
drift, a new setpoint) still alarms. Before the window slid and the hours had their own normal, a store room's
smooth 8 °C daily swing gave an alarm at every few hours, and a night-long gap read as a warm day."""
from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from connectors.files.fridge_tag import parse, telemetry_events
from models.contracts.alert import Source
from models.engine.runtime import Runtime
from models.rules.coldchain.dynamics import DynamicsDetector

T0 = 1791000000.0 - 1791000000.0 % 86400  # a UTC midnight
WEEKS = 4


def _clinic(h: float) -> bool:
    return 8 <= h % 24 < 17


#: Normal operation of several daily shapes: hour of the day (float) and a random source → °C.
SHAPES = {
    "flat": lambda h, rng: 5.0 + rng.gauss(0, 0.05),
    # an unconditioned store room: 18 °C at night, 26 °C in the afternoon, read to a tenth of a degree
    "room": lambda h, rng: 22.0 - 4.0 * math.cos(2 * math.pi * (h - 3) / 24),
    "smooth": lambda h, rng: 5.0 + 1.5 * math.sin(2 * math.pi * h / 24) + rng.gauss(0, 0.05),
    "square": lambda h, rng: 5.0 + (1.2 if _clinic(h) else 0.0) + rng.gauss(0, 0.05),
    "noisy": lambda h, rng: 5.0 + 1.0 * math.sin(2 * math.pi * (h - 9) / 24) + rng.gauss(0, 0.5),
    "defrost": lambda h, rng: 4.0 + (3.0 if h % 6 < 1 / 3 else 0.0) + rng.gauss(0, 0.1),
    "doors": lambda h, rng: 5.0 + (rng.expovariate(1 / 1.5) if _clinic(h) and rng.random() < 0.15 else 0.0)
                            + rng.gauss(0, 0.1),
}


def run(shape, every_min: float, gaps: bool, seed: int = 1, weeks: int = WEEKS, change=None):
    """The device's alarms over ``weeks`` of readings every ``every_min`` minutes; ``change(t_days)`` adds °C."""
    rng = random.Random(seed)
    rt = Runtime([DynamicsDetector()])
    holes = []
    if gaps:  # two to four silences of 1–6 h a week (a logger out of range, a power cut of the gateway)
        for w in range(weeks):
            for _ in range(rng.randint(2, 4)):
                start = T0 + (w * 7 + rng.uniform(0, 7)) * 86400
                holes.append((start, start + rng.uniform(1, 6) * 3600))
    alarms = []
    steps = int(weeks * 7 * 1440 / every_min)
    for i in range(steps):
        t = T0 + i * every_min * 60 + rng.uniform(-20, 20)
        if any(a <= t < b for a, b in holes):
            continue
        hour = (t - T0) / 3600 % 24
        y = shape(hour, rng) + (change((t - T0) / 86400) if change else 0.0)
        e = {"device_id": "FR-1", "device_kind": "fridge", "facility_id": "CDC-1", "temperature_c": round(y, 2),
             "_t": t}
        alarms += rt.process(e, Source("zhijian.telemetry", 0, i, f"FR-1@{i}"))
    return alarms


@pytest.mark.parametrize("every_min", [1, 5, 15])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_daily_rhythms_stay_within_one_alarm_per_device_week(shape, every_min):
    for gaps in (False, True):
        alarms = run(SHAPES[shape], every_min, gaps)
        assert len(alarms) <= WEEKS, (shape, every_min, gaps, [a.reason for a in alarms[:3]])


def test_a_new_setpoint_after_maintenance_is_one_alarm_then_the_normal():
    alarms = run(SHAPES["smooth"], 5, gaps=False, change=lambda d: -1.5 if d >= 14 else 0.0)
    assert len(alarms) == 1 and alarms[0].numbers["direction"] == "fall"
    assert 14 * 86400 < alarms[0].event_t - T0 < 15 * 86400


@pytest.mark.parametrize("shape", ["smooth", "square", "defrost", "doors"])
def test_a_drift_on_a_device_with_a_daily_rhythm_still_alarms_within_a_day(shape):
    start = 21.0  # after three normal weeks the compressor wears: +0.5 °C a day
    alarms = run(SHAPES[shape], 5, gaps=False, change=lambda d: max(0.0, d - start) * 0.5)
    assert alarms, shape
    first = alarms[0]
    assert first.numbers["direction"] == "rise"
    assert start * 86400 < first.event_t - T0 < (start + 2.5) * 86400, (first.event_t - T0) / 86400
    assert first.numbers["level_c"] > first.numbers["normal_c"]
    trace = first.numbers["trace"]  # the operator's view: the last day hour by hour against each hour's normal
    assert len(trace["observed"]) == len(trace["normal"]) == 24 and trace["start_t"] < first.event_t
    assert trace["observed"][-1] > trace["normal"][-1]


RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "coldchain" / "raw"
CST = timezone(timedelta(hours=8))


def _exports_with_readings():
    out = []
    for path in sorted(RAW.rglob("*.txt")):
        events = telemetry_events(parse(path.read_text(encoding="utf-8", errors="replace")), CST, "FAC-1")
        if len(events) > 50:
            out.append(pytest.param(events, id=path.name))
    return out


@pytest.mark.skipif(not RAW.exists(), reason="../shared/data/coldchain is not beside the checkout")
@pytest.mark.parametrize("events", _exports_with_readings() if RAW.exists() else [])
def test_every_real_logger_export_stays_within_the_budget(events):
    """Each Berlinger export with readings, as recorded, read a third as often, and with six silences of 1–6 h."""
    times = [datetime.fromisoformat(e["event_time"]).timestamp() for e in events]
    weeks = max(1.0, (times[-1] - times[0]) / (7 * 86400))
    rng = random.Random(len(events))
    holes = [(s, s + rng.uniform(1, 6) * 3600) for s in (rng.uniform(times[0], times[-1]) for _ in range(6))]
    variants = {"as recorded": list(range(len(events))), "every third": list(range(0, len(events), 3)),
                "with gaps": [i for i, t in enumerate(times) if not any(a <= t < b for a, b in holes)]}
    for label, keep in variants.items():
        rt = Runtime([DynamicsDetector()])
        alarms = []
        for i in keep:
            e = dict(events[i], _t=times[i])
            alarms += rt.process(e, Source("zhijian.telemetry", 0, i, f"{e['device_id']}@{i}"))
        assert len(alarms) <= weeks, (label, len(alarms), weeks, [a.reason for a in alarms[:2]])
