"""Antimicrobial stewardship indicators (issue 23 item 1) on settled claims: the monthly rates against the national
targets, refunds counted once, small units not judged, and on the simulated region the overusing hospital found
while a busy emergency department (over the outpatient target, within its own) is not."""
from __future__ import annotations

from datetime import datetime

import pytest

from models.contracts.alert import Source
from models.engine.runtime import Runtime
from models.rules.claims.antimicrobial_stewardship import StewardshipDetector, StewardshipLimits
from streams.lab.simulator import REGION_CONFIG, RegionSimulator, SimulationConfig
from streams.settings import load_settings

DRUGS = {"AMOX": {"atc": "J01CA04", "grams_per_unit": 0.5, "route": "O"},
         "CRO": {"atc": "J01DD04", "grams_per_unit": 1.0, "route": "P"}}


def _claim(n, day, kind, codes, month="2026-10", qty=6, **extra):
    e = {"claim_id": f"C{n}", "institution_id": "H1", "region": "310104", "claim_type": kind,
         "event_time": f"{month}-{day:02d}T10:00:00+08:00", "patient": f"P{n}",
         "items": [{"item_code": c, "quantity": qty, "amount": 10.0} for c in codes], **extra}
    e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
    return e, Source("zhijian.claims", 0, n, e["claim_id"] + f"#{extra.get('version', 1)}")


def _close_october(rt, n):
    rt.process(*_claim(n, 1, "outpatient", ["IBU"], month="2026-11"))
    return rt.process(*_claim(n + 1, 2, "outpatient", ["IBU"], month="2026-11", patient="Px"))


def test_a_refund_counts_once_a_price_correction_changes_nothing_and_a_small_unit_is_not_judged():
    rt = Runtime([StewardshipDetector(StewardshipLimits(drugs=DRUGS, min_visits=100))])
    n = 0
    for day in range(1, 21):
        for i in range(6):  # 120 visits, 30 with amoxicillin: 25 %
            n += 1
            rt.process(*_claim(n, day, "outpatient", ["AMOX"] if i < 2 and day % 4 else ["IBU"]))
    # a refund of an amoxicillin visit: voided, settled again without it — 29 of 120
    rt.process(*_claim(n + 1, 20, "outpatient", ["AMOX"], claim_id="RF1", original_claim_id="C1", adjustment="void",
                       version=2))
    rt.process(*_claim(n + 2, 20, "outpatient", ["IBU"], claim_id="RS1", original_claim_id="C1",
                       adjustment="replacement", version=3))
    # a price correction of another: not counted again
    rt.process(*_claim(n + 3, 20, "outpatient", ["AMOX"], claim_id="C2", original_claim_id="C2",
                       adjustment="replacement", version=2))
    # ninety emergency visits, all with an antimicrobial: too few to judge
    for i in range(90):
        rt.process(*_claim(n + 10 + i, 1 + i % 20, "emergency", ["AMOX"]))
    [a] = _close_october(rt, n + 200)
    assert (a.numbers["indicator"], a.numbers["numerator"], a.numbers["denominator"]) == ("outpatient_rate", 29, 120)
    assert a.numbers["value"] == round(29 / 120, 4) and a.entity_id == "H1" and a.numbers["month"] == "2026-10"
    assert a.numbers["emergency_rate"]["judged"] is False and a.numbers["emergency_rate"]["value"] == 1.0


def test_a_region_without_a_drug_dictionary_is_not_judged():
    rt = Runtime([StewardshipDetector()])
    for i in range(200):
        assert rt.process(*_claim(i, 1 + i % 20, "outpatient", ["AMOX"])) == []
    assert _close_october(rt, 300) == []


@pytest.mark.parametrize("seed", [3, 11])
def test_the_overusing_hospital_is_found_and_the_busy_emergency_department_is_not(seed):
    days = 22
    sim = RegionSimulator(SimulationConfig(seed=seed, days=days, scale=0.6, scenarios=("antimicrobial_overuse",),
                                           look_alikes=True))
    limits = load_settings([str(REGION_CONFIG)], environ={}).detectors["claim.antimicrobial_stewardship"]
    rt, alerts, n = Runtime([StewardshipDetector(limits)]), [], 0
    for stream, _, e in sim.until(sim.t0 + days * 86400):
        if stream == "claim":
            n += 1
            event = {**e, "patient": e["patient_id"], "_t": datetime.fromisoformat(e["event_time"]).timestamp()}
            alerts += rt.process(event, Source("zhijian.claims", 0, n, e["claim_id"]))
    [overuse] = [x["entity"]["id"] for x in sim.truth if x["scenario"] == "antimicrobial_overuse"]
    [busy] = [x["entity"]["id"] for x in sim.truth if x["scenario"] == "busy_emergency"]
    assert {a.entity_id for a in alerts} == {overuse}, [a.reason for a in alerts]
    found = {a.numbers["indicator"]: a for a in alerts}
    assert {"outpatient_rate", "inpatient_use_rate"} <= set(found) <= {"outpatient_rate", "inpatient_use_rate", "emergency_rate"}
    for name, a in found.items():
        x = a.numbers
        assert x["month"] == "2026-10" and x["value"] > x["target"] and x["denominator"] >= 100
        assert x["value"] == round(x["numerator"] / x["denominator"], 4)
    if busy != overuse:
        assert not any(a.entity_id == busy for a in alerts)
