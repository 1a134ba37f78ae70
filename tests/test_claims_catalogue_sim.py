"""The claims rules of issue 24 on the simulated region with their planted scenarios and their benign look-alikes
(the region's own configuration): every planted incident found, no look-alike alarmed, no other alert."""
from __future__ import annotations

from streams.lab.simulator import RegionSimulator, SimulationConfig
from streams.lab.simulator.scenarios import BY_NAME, LOOK_ALIKES
from tests.simulated import run_rules, scored

RULES = ("claim.two_places", "claim.payment_restriction", "claim.group_visits")


def test_new_claims_rules_find_their_scenarios_and_stay_quiet_on_their_look_alikes():
    planted = tuple(n for n, sc in BY_NAME.items() if set(sc.detectors) & set(RULES))
    assert set(planted) == {"card_two_places", "overlapping_stays", "restricted_item", "group_visits"}
    days = 30
    sim = RegionSimulator(SimulationConfig(seed=5, days=days, scale=0.3, scenarios=planted, scenario_rate=2,
                                           look_alikes=True))
    alerts, _, n = run_rules(sim, "claim", RULES, days)
    report = scored(sim, alerts, RULES, n, days)
    by = {s.scenario: s for s in report.scenarios}
    assert all(by[name].incidents >= 2 and by[name].recall == 1.0 for name in planted), [
        (s.scenario, s.incidents, s.detected, s.incomplete) for s in report.scenarios]
    relevant = {s.name for s in LOOK_ALIKES if set(s.detectors) & set(RULES)}
    assert {x.scenario for x in report.look_alikes} == relevant
    assert all(x.instances >= 2 and x.alarmed == 0 for x in report.look_alikes), report.look_alikes
    assert report.false_alarms == 0, report.unmatched_examples


def test_group_bench_prints_the_rule_beside_its_reference_and_finds_the_clinics_groups(tmp_path, capsys):
    import json

    from streams.cli import main

    out = tmp_path / "groups.json"
    assert main(["group-bench", "--beneficiaries", "20000", "--days", "25", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| reference (a runtime with a detector that does nothing) |" in printed and "| claim.group_visits |" in printed
    r = json.loads(out.read_text())
    assert r["claims"] > 20_000 and r["reference_claims_per_s"] > 0 and r["rule_claims_per_s"] > 0
    assert r["heap_peak_mib"] > 0 and r["largest_state_kib"] > 0 and r["other_alerts"] == 0
    for kind in ("community", "private_clinic", "pharmacy"):  # sites whose table holds the whole month
        assert r["groups"][kind]["planted"] >= 3 and r["groups"][kind]["found"] == r["groups"][kind]["planted"]
    assert main(["group-bench", "--beneficiaries", "10"]) == 2
    assert capsys.readouterr().err.startswith("zhijian: error: --beneficiaries must be at least 1000")
