"""The claims rules of issue 24 on the simulated region with their planted scenarios and their benign look-alikes
(the region's own configuration): every planted incident found, no look-alike alarmed, no other alert."""
from __future__ import annotations

from datetime import datetime

from models.contracts.alert import Source
from models.engine.runtime import Runtime
from models.rules import registry
from streams.lab.scoring import Incident, score
from streams.lab.simulator import REGION_CONFIG, RegionSimulator, SimulationConfig
from streams.lab.simulator.scenarios import BY_NAME, LOOK_ALIKES
from streams.settings import load_settings

RULES = ("claim.two_places", "claim.payment_restriction", "claim.group_visits")


def test_new_claims_rules_find_their_scenarios_and_stay_quiet_on_their_look_alikes():
    planted = tuple(n for n, sc in BY_NAME.items() if set(sc.detectors) & set(RULES))
    assert set(planted) == {"card_two_places", "overlapping_stays", "restricted_item", "group_visits"}
    days = 30
    sim = RegionSimulator(SimulationConfig(seed=5, days=days, scale=0.3, scenarios=planted, scenario_rate=2,
                                           look_alikes=True))
    config = load_settings([str(REGION_CONFIG)], environ={}).detectors
    rt = Runtime([cls(config[cls.name]) for cls in registry.detector_classes() if cls.name in RULES])
    alerts, n = {}, 0
    for stream, _, e in sim.until(sim.t0 + days * 86400):
        if stream != "claim":
            continue
        n += 1
        event = {**e, "patient": e["patient_id"], "_t": datetime.fromisoformat(e["event_time"]).timestamp()}
        for a in rt.process(event, Source("zhijian.claims", 0, n, e["claim_id"])):
            alerts[a.alert_id] = a
    truth = [Incident(x["scenario"], x["entity"]["kind"], x["entity"]["id"], x["start_t"], x["end_t"],
                      tuple(x["detectors"]), bool(x["detail"].get("benign")))
             for x in sim.truth if set(x["detectors"]) & set(RULES)]
    report = score(truth, [{"detector": a.detector, "entity": {"kind": a.entity_kind, "id": a.entity_id},
                            "t": a.event_t} for a in alerts.values() if a.status == "open"], events=n,
                   until=sim.t0 + days * 86400)
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
