"""High-value consumables 高值医用耗材 (issue 23 item 3) on the simulated region: a ward billing its stent or stapler on
far more of its stays is found against its own history and the same ward at the other hospitals, with the stays as
evidence; a price cut that raises every hospital's use raises nothing; and a consumable a supervisor puts on the
watch list gets the stricter chart."""
from __future__ import annotations

import random
from datetime import datetime

import pytest

from models.contracts.alert import Source
from models.engine.runtime import Runtime
from models.rules.claims.consumable_usage import ConsumableUsageDetector
from streams.lab.simulator import REGION_CONFIG, RegionSimulator, SimulationConfig
from streams.lab.simulator.scenarios import BY_NAME, LOOK_ALIKE_BY_NAME
from streams.settings import load_settings
from tests.simulated import run_rules, scored

RULE = "claim.consumable_usage"


@pytest.mark.parametrize("seed", [3, 19])
def test_a_ward_overusing_a_consumable_is_found_and_a_regional_price_cut_is_not(seed):
    assert [n for n, sc in BY_NAME.items() if RULE in sc.detectors] == ["consumable_overuse"]
    assert [n for n, sc in LOOK_ALIKE_BY_NAME.items() if RULE in sc.detectors] == ["consumable_price_cut"]
    assert set(load_settings([str(REGION_CONFIG)], environ={}).detectors[RULE].consumables) == {
        "M-STENT", "M-STAPLER", "M-HEMO"}
    days = 30
    sim = RegionSimulator(SimulationConfig(seed=seed, days=days, scale=1.0, scenarios=("consumable_overuse",),
                                           scenario_rate=2, look_alikes=True))
    alerts, claims, n = run_rules(sim, "claim", (RULE,), days)
    report = scored(sim, alerts, (RULE,), n, days)
    [overuse] = report.scenarios
    assert overuse.incidents >= 2 and overuse.recall == 1.0, overuse
    [cut] = report.look_alikes
    assert cut.scenario == "consumable_price_cut" and cut.instances >= 2 and cut.alarmed == 0, cut
    assert report.false_alarms == 0, report.unmatched_examples
    truth = {x["entity"]["id"]: x["detail"] for x in sim.truth if x["scenario"] == "consumable_overuse"}
    for a in alerts.values():
        x, detail = a.numbers, truth[a.entity_id]
        inst, ward = a.entity_id.split("/")
        assert (a.entity_kind, a.institution_id, x["department"], x["consumable"]) == (
            "department", inst, ward, detail["consumable"])
        assert x["listed"] and (x["ratio"], x["threshold"]) == (2.0, 8.0)
        assert x["share"] == round(x["with_consumable"] / x["stays"], 4) and x["share"] > 1.3 * x["expected_share"]
        assert x["units"] >= x["with_consumable"] and x["amount"] > 0
        assert a.evidence and all(claims[s.event_id]["institution_id"] == inst
                                  and claims[s.event_id]["discharge_department"] == ward
                                  and claims[s.event_id]["event_time"][:10] == x["day"]
                                  and any(it["item_code"] == x["consumable"] for it in claims[s.event_id]["items"])
                                  for s in a.evidence)


def _wards(reference):
    """Three hospitals' cardiology wards for four weeks; from the 22nd H2's bills a new consumable X-VALVE on 8 % more
    of its stays (2 % before). The alerts, with ``reference`` as the worker's tables."""
    rng, rt, n, out = random.Random(4), Runtime([ConsumableUsageDetector()], reference=reference), 0, []
    for d in range(1, 29):
        for inst in ("H1", "H2", "H3"):
            for i in range(25):
                lines = [{"item_code": "S-BED", "category": "bed", "quantity": 5, "amount": 300.0}]
                if rng.random() < 0.02 + (0.08 if inst == "H2" and d >= 22 else 0.0):
                    lines.append({"item_code": "X-VALVE", "category": "consumable", "quantity": 1, "amount": 9000.0})
                n += 1
                e = {"claim_id": f"C{n}", "institution_id": inst, "region": "310104", "claim_type": "inpatient",
                     "discharge_department": "CARD", "items": lines,
                     "event_time": f"2026-10-{d:02d}T{8 + i // 3:02d}:{i % 3 * 15:02d}:00+08:00"}
                e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
                out += rt.process(e, Source("zhijian.claims", 0, n, e["claim_id"]))
    return out


def test_a_consumable_a_supervisor_lists_gets_the_stricter_chart():
    """An entry ``consumable:X-VALVE`` on ``key_monitored`` (the workbench's list) makes the same rise found at 2×
    and evidence 8, named as the entry names it; unlisted, the chart of any consumable (3×, 15) does not find it
    within the week."""
    [a] = _wards({"watchlist": {"consumable:X-VALVE": {"list": "key_monitored", "name": "valve 1"}}})
    assert (a.entity_id, a.numbers["consumable"], a.numbers["listed"]) == ("H2/CARD", "X-VALVE", True)
    assert a.numbers["consumable_name"] == "valve 1" and "(listed: watch list)" in a.reason
    assert a.numbers["day"] >= "2026-10-22"
    assert _wards({}) == []
    assert _wards({"watchlist": {"consumable:X-VALVE": {"list": "watch"}}}) == []
