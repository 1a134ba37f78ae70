"""Alert floods bounded (issue 9): past the hourly cap per entity, one summary alert instead of the rest."""
import orjson

from models.contracts.alert import Source, alert_id, iso
from models.engine.flood import AlertCap
from models.rules.prescription.over_supply import OverSupplyDetector
from models.engine.runtime import Runtime
from streams.worker.plan import build_detectors
from streams.settings import load_settings

T0 = 1767225600.0  # 2026-01-01T00:00:00Z, an hour's start


def rx(n, t, prescriber="D1"):
    """An outpatient prescription supplying 30 days (limit 7): one over-supply alert on its prescriber."""
    return ({"prescription_id": f"RX{n}", "institution_id": "H1", "department": "IM", "prescriber_id": prescriber,
             "patient": f"P{n}", "visit_type": "outpatient", "_t": t,
             "items": [{"drug_code": "A", "name": "drug A", "days_supply": 30}]},
            Source("zhijian.prescriptions", 0, n, f"RX{n}"))


def run(rt, events):
    out = []
    for e, s in events:
        out += rt.process(e, s)
    return out


def flood(n=50, start=0):
    return [rx(start + i, T0 + 60 * i) for i in range(n)]  # one a minute; 50 spill into the next hour


def test_an_entity_gets_the_cap_then_summaries_that_double_then_a_closed_one():
    rt = Runtime([OverSupplyDetector()], cap=AlertCap(per_hour=20))
    alerts = run(rt, flood(50))
    plain = [a for a in alerts if a.detector == "prescription.over_supply"]
    summaries = [a for a in alerts if a.detector == "alerts.flood"]
    # all fifty in the first hour: the first twenty through, thirty held back
    assert [a.evidence[0].event_id for a in plain] == [f"RX{i}" for i in range(20)]
    sid = alert_id("alerts.flood", "1", "prescriber", "D1", f"{T0:.0f}")
    assert {s.alert_id for s in summaries} == {sid}
    assert [s.numbers["held_back"] for s in summaries] == [1, 2, 4, 8, 16]
    assert all(s.status == "open" for s in summaries)
    # the hour ends, then its grace: the closed summary with the full count and where the flood began and ended
    [closed] = run(rt, [rx(999, T0 + 2 * 3600 + 1, prescriber="D2")])[1:]
    assert (closed.alert_id, closed.status) == (sid, "closed")
    assert closed.numbers == {"hour": iso(T0), "held_back": 30, "by_detector": {"prescription.over_supply": 30},
                              "cap_per_hour": 20}
    assert [e.event_id for e in closed.evidence] == ["RX20", "RX49"]
    assert (closed.entity_kind, closed.entity_id, closed.tier, closed.stream) == (
        "prescriber", "D1", "violation", "prescription")
    assert "30 more alerts in the hour from 2026-01-01T00:00:00+00:00 held back after the first 20" in closed.reason


def test_each_hour_and_each_entity_has_its_own_cap_and_state_is_forgotten_after_it():
    rt = Runtime([OverSupplyDetector()], cap=AlertCap(per_hour=3))
    alerts = run(rt, [rx(i, T0 + 60 * i) for i in range(5)] + [rx(10 + i, T0 + 60 * i, "D2") for i in range(3)]
                 + [rx(20 + i, T0 + 3600 + 60 * i) for i in range(3)])
    per = {}
    for a in alerts:
        per.setdefault((a.entity_id, a.detector), []).append(a)
    assert len(per[("D1", "prescription.over_supply")]) == 3 + 3  # three in each hour
    assert len(per[("D2", "prescription.over_supply")]) == 3 and ("D2", "alerts.flood") not in per
    run(rt, [rx(99, T0 + 6 * 3600, "D3")])
    assert rt.store_of("alerts.flood", f"prescriber:D1@{T0:.0f}") is None  # expired by event time


def test_a_redelivered_event_and_an_alert_update_pass_without_counting():
    rt = Runtime([OverSupplyDetector()], cap=AlertCap(per_hour=2))
    events = flood(4)
    alerts = run(rt, events + events)  # all delivered twice
    assert sum(a.detector == "prescription.over_supply" for a in alerts) == 2 + 2  # the first two, each twice
    assert [a.numbers["held_back"] for a in alerts if a.detector == "alerts.flood"] == [1, 2]


def test_the_cap_is_checkpointed_with_the_detectors():
    whole = Runtime([OverSupplyDetector()], cap=AlertCap(per_hour=5))
    want = [(a.alert_id, a.status, orjson.dumps(a.numbers)) for a in run(whole, flood(30))]
    first = Runtime([OverSupplyDetector()], cap=AlertCap(per_hour=5))
    got = run(first, flood(12))
    second = Runtime([OverSupplyDetector()], cap=AlertCap(per_hour=5))
    second.restore(orjson.loads(orjson.dumps(first.snapshot())))
    got += run(second, flood(30)[12:])
    assert [(a.alert_id, a.status, orjson.dumps(a.numbers)) for a in got] == want


def test_the_worker_setting_turns_it_on_and_off():
    on = build_detectors(load_settings(environ={}))["prescription"][0]
    off = build_detectors(load_settings(environ={"ZHIJIAN_ALERT_CAP_PER_HOUR": "0"}))["prescription"][0]
    assert sum(a.detector == "prescription.over_supply" for a in run(on, flood(30))) == 20
    assert sum(a.detector == "prescription.over_supply" for a in run(off, flood(30))) == 30
