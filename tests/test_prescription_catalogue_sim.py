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
