"""The waste generation rules on the simulated region with their planted scenarios and their benign look-alikes
(issue 23 item 6): a site that stops declaring part of its infectious waste is found by the shift in its category
mix, a site whose waste falls by its total, a site that has always declared a third of its waste against its peers
per bed; a catch-up collection after two missed ones, a vaccination campaign's extra sharps and a half-empty hospital
raise nothing, and nothing else alarms."""
from __future__ import annotations

import pytest

from streams.lab.simulator import RegionSimulator, SimulationConfig
from streams.lab.simulator.scenarios import BY_NAME, LOOK_ALIKES
from tests.simulated import run_rules, scored

RULES = ("waste.category_mix", "waste.generation_anomaly", "waste.generation_per_bed")


@pytest.mark.parametrize("seed", [3, 11])
def test_waste_mix_and_volume_rules_find_their_scenarios_and_stay_quiet_on_their_look_alikes(seed):
    planted = ("infectious_waste_sold", "generation_drop", "under_declared_site")
    assert all(set(BY_NAME[n].detectors) & set(RULES) for n in planted)
    days = 45
    sim = RegionSimulator(SimulationConfig(seed=seed, days=days, scale=0.6, scenarios=planted, look_alikes=True))
    alerts, _, n = run_rules(sim, "waste", RULES, days)
    report = scored(sim, alerts, RULES, n, days)
    by = {s.scenario: s for s in report.scenarios}
    # a small region has few hospitals: a drop finds no free site when the look-alikes hold them all
    assert {"infectious_waste_sold", "under_declared_site"} <= set(by) <= set(planted)
    assert all(by[name].incidents >= 1 and by[name].recall == 1.0 for name in by), [
        (s.scenario, s.incidents, s.detected, s.incomplete) for s in report.scenarios]
    sold = [a for a in alerts.values() if a.detector == "waste.category_mix"]
    [incident] = [x for x in sim.truth if x["scenario"] == "infectious_waste_sold"]
    found = [a for a in sold if a.entity_id == incident["entity"]["id"]]
    assert found and all(a.numbers["shares"]["infectious"] < a.numbers["normal_shares"]["infectious"] - 0.1
                         for a in found), [a.reason for a in found]
    assert "infectious" in found[0].numbers["moved"] and found[0].numbers["shift"] >= 0.1
    relevant = {s.name for s in LOOK_ALIKES if set(s.detectors) & set(RULES)}
    assert {x.scenario for x in report.look_alikes} == relevant == {"catch_up_collection", "vaccination_campaign",
                                                                     "low_occupancy"}
    assert all(x.instances >= (1 if x.scenario == "low_occupancy" else 2) and x.alarmed == 0
               for x in report.look_alikes), report.look_alikes
    [low] = [a for a in alerts.values() if a.detector == "waste.generation_per_bed"
             and a.entity_id == next(x["entity"]["id"] for x in sim.truth if x["scenario"] == "under_declared_site")]
    x = low.numbers
    assert x["ratio"] < 0.5 and x["ratio"] == round(x["kg_per_bed_day"] / x["peers_median"], 3)
    assert x["kg_per_bed_day"] == round(x["kg"] / x["window_days"] / x["beds"], 3) and len(x["peers"]) >= 2
    assert report.false_alarms == 0, report.unmatched_examples
