"""`zhijian evaluate --seed 7 --days 30 --workers 2 --kill-every 20`: the simulated region through the real
worker on its own embedded broker, once with one worker uninterrupted, then with two workers one of which is
killed with SIGKILL every 20 s and replaced; the alert sets must be identical by id, and the run is scored per
scenario. This is the run the documentation's tables come from. (A 20-day run, tried to shorten CI, lost one
re-keyed waste-generation alert after its kills in two runs of three: an open defect, see docs/state.md.)"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from streams.lab.simulator.scenarios import BY_NAME


@pytest.mark.long  # in its own lane, beside the other integration tests (Makefile: test)
@pytest.mark.timeout(2400)  # the run's own limit below; the suite's 600 s default cut it at 10 min in a fresh clone
def test_evaluate_thirty_days_with_kills_gives_the_alerts_of_one_worker_and_every_scenario(tmp_path):
    report, truth = tmp_path / "report.json", tmp_path / "truth.jsonl"
    proc = subprocess.run([sys.executable, "-m", "streams.cli", "evaluate", "--seed", "7", "--days", "30",
                           "--workers", "2", "--kill-every", "20", "--json", str(report), "--truth", str(truth)],
                          capture_output=True, text=True, timeout=2400, cwd=tmp_path.parent)
    print(proc.stdout[-1500:])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(report.read_text())
    assert r["comparison"]["identical"] and r["comparison"]["missing"] == r["comparison"]["extra"] == []
    assert r["comparison"]["alerts"] == r["alerts"] > 100 and r["workers"] == 2 and r["kills"] >= 3
    assert "alert set identical, by id, to the one-worker uninterrupted run" in proc.stdout
    assert "| scenario | incidents | detected | recall | precision | median delay |" in proc.stdout
    assert sum(r["events"].values()) > 800_000 and set(r["events"]) == {"prescription", "claim", "waste", "telemetry"}
    by = {s["scenario"]: s for s in r["scenarios"]}
    assert set(by) == set(BY_NAME) - {"fraudulent_institution"}  # every scenario listed, detected or not …
    ranking = r["institution_ranking"]["rankings"]  # … the institution-wide fraud ranked by the risk score
    assert ranking["risk score"]["roc_auc"] > ranking["claim volume (baseline)"]["roc_auc"] + 0.15
    assert "### institutions ranked by the risk score" in proc.stdout
    # on this seed every scenario is caught; the online models get a little room, and so does the card burst: a
    # count over a random background, which the busiest pharmacy reaches by chance about once a month
    models = {"antimicrobial_ramp", "generation_drop", "upcoding_profile", "warming_drift", "card_skimming",
              "infectious_waste_sold", "drug_surge", "department_push", "consumable_overuse"}
    # a calendar month's 双排名 closes after a 30-day run that starts on 12 October: the prescriber is found within
    # days by prescription.drug_usage; the institution by the rise of its mean claim, or it is running at the end
    push = by["drug_push"]
    assert push["detected"] >= 1 and push["detected"] == push["incidents"] == 2 - push["incomplete"], push
    for name in set(BY_NAME) - models - {"fraudulent_institution", "drug_push"}:
        assert by[name]["recall"] == 1.0 and by[name]["precision"] >= 0.9, by[name]
    for name in models:
        assert by[name]["recall"] >= 0.5 and (by[name]["precision"] or 0) >= 0.5, by[name]
    assert by["over_supply"]["median_delay_s"] == 0  # flagged on arrival
    assert by["storage_overdue"]["median_delay_s"] >= 48 * 3600  # cannot be known before the 48 h limit
    assert 24 * 3600 <= by["manifest_not_closed"]["median_delay_s"] < 26 * 3600  # the 24 h transport window
    assert by["sensor_silent"]["median_delay_s"] <= 35 * 60  # the 30 min limit, as the watermark passes it
    assert by["power_loss"]["median_delay_s"] < 3 * 3600
    assert 3 * 86400 < by["antimicrobial_ramp"]["median_delay_s"] < 14 * 86400  # evidence builds over days
    assert by["warming_drift"]["median_delay_s"] < 5 * 86400  # the dynamics model, before the compressor fails
    assert r["false_alarms"] <= 3, r["unmatched_examples"]
    lines = [json.loads(line) for line in truth.read_text().splitlines()]
    ranked = sum(x["scenario"] == "fraudulent_institution" for x in lines)
    # an incident still running at the end (a readmission billed after it) is counted apart, not missed; a
    # department's push is also each of its prescribers' (optional: true when found, not counted when missed)
    required = [x for x in lines if not x["detail"].get("optional")]
    assert ranked >= 5 and len(required) == sum(s["incidents"] + s["incomplete"] for s in r["scenarios"]) + ranked
