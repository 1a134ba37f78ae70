"""Excess usage at department level 科室超常预警 (issue 23 item 5, "at an institution, department …") on the simulated
region: a hospital department whose prescribers push one drug together is found against the same department at the
other hospitals, with its counts and prescriptions as evidence; a season the region's departments share raises
nothing, and neither does a single prescriber's surge (that prescriber's chart's)."""
from __future__ import annotations

import pytest

from streams.lab.simulator import RegionSimulator, SimulationConfig
from streams.lab.simulator.scenarios import BY_NAME, LOOK_ALIKE_BY_NAME
from tests.simulated import run_rules, scored

RULE = "prescription.department_usage"


@pytest.mark.parametrize("seed", [5, 19])
def test_a_department_push_is_found_against_the_same_department_elsewhere_and_a_regional_season_is_not(seed):
    assert [n for n, sc in BY_NAME.items() if RULE in sc.detectors] == ["department_push"]
    assert [n for n, sc in LOOK_ALIKE_BY_NAME.items() if RULE in sc.detectors] == ["seasonal_outbreak"]
    days = 30
    sim = RegionSimulator(SimulationConfig(seed=seed, days=days, scale=1.0, scenarios=("department_push", "drug_surge"),
                                           scenario_rate=2, look_alikes=True))
    alerts, prescriptions, n = run_rules(sim, "prescription", (RULE,), days)
    report = scored(sim, alerts, (RULE,), n, days)
    [push] = report.scenarios
    assert push.scenario == "department_push" and push.incidents >= 2 and push.recall == 1.0, push
    [season] = report.look_alikes
    assert season.scenario == "seasonal_outbreak" and season.instances >= 10 and season.alarmed == 0, season
    assert report.false_alarms == 0, report.unmatched_examples  # the surges (one prescriber each) included
    pushes = {x["entity"]["id"]: x["detail"] for x in sim.truth if x["scenario"] == "department_push"
              and x["entity"]["kind"] == "department"}
    assert alerts and {a.entity_id for a in alerts.values()} <= set(pushes)
    for a in alerts.values():
        x, detail = a.numbers, pushes[a.entity_id]
        inst, dept = a.entity_id.split("/")
        assert (a.entity_kind, a.institution_id, x["department"], x["drug"]) == ("department", inst, dept,
                                                                                   detail["drug"])
        assert x["share"] == round(x["with_drug"] / x["prescriptions"], 4) and x["prescribers"] >= 3
        # judged without its top prescriber, and still above what its history and its peers explain
        assert x["judged_prescriptions"] < x["prescriptions"] and x["judged_with_drug"] < x["with_drug"]
        assert x["judged_share"] > 1.3 * x["expected_share"] and x["evidence"] >= x["threshold"]
        assert f"department {dept} of {inst}" in a.reason and "without its prescriber who wrote it most" in a.reason
        assert a.evidence and len({prescriptions[s.event_id]["prescriber_id"] for s in a.evidence}) == len(a.evidence)
        for s in a.evidence:
            rx = prescriptions[s.event_id]
            assert (rx["institution_id"], rx["department"], rx["event_time"][:10]) == (inst, dept, x["day"])
            assert any(it["drug_code"] == x["drug"] for it in rx["items"])
