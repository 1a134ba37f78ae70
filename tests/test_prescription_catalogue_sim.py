"""Excess usage of any drug and of the key-monitored list (issue 23 items 3 and 5) on the simulated region: a
prescriber whose use of one drug climbs is found, with the counts, the department's share and the prescriptions as
evidence; a department-wide influenza season raises nothing, and nothing else alarms."""
from __future__ import annotations

import pytest

from streams.lab.simulator import REGION_CONFIG, RegionSimulator, SimulationConfig
from streams.lab.simulator.scenarios import BY_NAME
from streams.settings import load_settings
from tests.simulated import run_rules, scored

RULE = "prescription.drug_usage"


@pytest.mark.parametrize("seed", [3, 11])
def test_a_drug_surge_is_found_against_self_and_department_and_a_season_is_not(seed):
    planted = tuple(n for n, sc in BY_NAME.items() if RULE in sc.detectors)
    assert set(planted) == {"drug_surge", "drug_push"}
    days = 30
    sim = RegionSimulator(SimulationConfig(seed=seed, days=days, scale=0.6, scenarios=("drug_surge",),
                                           scenario_rate=2, look_alikes=True))
    alerts, prescriptions, n = run_rules(sim, "prescription", (RULE,), days)
    assert set(load_settings([str(REGION_CONFIG)], environ={}).detectors[RULE].key_monitored) == {
        "D-OXI1G", "D-GM1", "D-PGE1"}
    report = scored(sim, alerts, (RULE,), n, days, incident=lambda x: x["entity"]["kind"] == "prescriber")
    [surge] = report.scenarios
    assert surge.incidents >= 4 and surge.recall == 1.0, surge
    [season] = report.look_alikes
    assert season.scenario == "seasonal_outbreak" and season.instances >= 3 and season.alarmed == 0, season
    assert report.false_alarms == 0, report.unmatched_examples
    surges = {x["entity"]["id"]: x["detail"] for x in sim.truth if x["scenario"] == "drug_surge"
              and x["entity"]["kind"] == "prescriber"}
    for a in alerts.values():
        x = a.numbers
        assert x["drug"] == surges[a.entity_id]["drug"] and x["key_monitored"] == surges[a.entity_id]["key_monitored"]
        assert x["share"] == round(x["with_drug"] / x["prescriptions"], 4) and x["share"] > 1.5 * x["expected_share"]
        assert ("key-monitored: 第一批国家重点监控合理用药药品目录(2019)" in a.reason) == x["key_monitored"]
        assert a.evidence and all(prescriptions[s.event_id]["prescriber_id"] == a.entity_id
                                  and prescriptions[s.event_id]["event_time"][:10] == x["day"]
                                  and any(it["drug_code"] == x["drug"] for it in prescriptions[s.event_id]["items"])
                                  for s in a.evidence)


def _push_month(reference):
    """Four prescribers of one department, a month; from the 22nd one of them writes a drug on 8 % more of his
    prescriptions (2 % before). The alerts of prescription.drug_usage, with ``reference`` as the worker's tables."""
    import random
    from datetime import datetime

    from models.contracts.alert import Source
    from models.engine.runtime import Runtime
    from models.rules.prescription.drug_usage import DrugUsageDetector

    rng, rt, n, out = random.Random(8), Runtime([DrugUsageDetector()], reference=reference), 0, []
    for d in range(1, 31):
        for doc in ("D1", "D2", "D3", "D4"):
            for i in range(40):
                items = [{"drug_code": "D-IBU200", "atc_code": "M01AE01", "amount": 2.4}]
                if rng.random() < 0.02 + (0.08 if doc == "D1" and d >= 22 else 0.0):
                    items.append({"drug_code": "X-NEW", "atc_code": "N06BX24", "amount": 600.0})
                n += 1
                e = {"prescription_id": f"RX{n}", "institution_id": "H1", "department": "IM", "prescriber_id": doc,
                     "region": "310104", "visit_type": "outpatient", "items": items,
                     "event_time": f"2026-10-{d:02d}T{9 + i // 8:02d}:{i % 8 * 7:02d}:00+08:00"}
                e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
                out += rt.process(e, Source("zhijian.prescriptions", 0, n, e["prescription_id"]))
    return out


def test_a_drug_a_supervisor_puts_on_the_key_monitored_list_gets_the_stricter_chart():
    """The workbench's list (issue 23 item 3): an entry ``drug:X-NEW`` on ``key_monitored`` reaches the rule through
    the watch-list table every worker follows; the same rise is then judged at 1.5× and evidence 8 — found, named as
    the entry names it — where the chart of any drug (2×, 15) does not find it within the month; an entry past its
    last day, or on another list, is not applied."""
    listed = {"watchlist": {"drug:X-NEW": {"list": "key_monitored", "name": "newdrug 1 g"}}}
    [a] = _push_month(listed)
    assert (a.entity_id, a.numbers["drug"], a.numbers["key_monitored"]) == ("D1", "X-NEW", True)
    assert a.numbers["drug_name"] == "newdrug 1 g" and (a.numbers["ratio"], a.numbers["threshold"]) == (1.5, 8.0)
    assert "(key-monitored: watch list)" in a.reason and a.numbers["day"] >= "2026-10-22"
    assert _push_month({}) == []
    assert _push_month({"watchlist": {"drug:X-NEW": {"list": "key_monitored", "until": "2026-10-15"}}}) == []
    assert _push_month({"watchlist": {"drug:X-NEW": {"list": "watch"}}}) == []
