"""`zhijian evaluate --seed 7 --days 30`: the simulated region through the real worker on its own
embedded broker, scored per scenario. This is the run the README's table comes from."""
from __future__ import annotations

import json
import subprocess
import sys

from connectors.simulator.scenarios import BY_NAME

#: scenarios whose detectors exist: each of their incidents must be caught
IMPLEMENTED = {"over_supply", "duplicate_charge", "storage_overdue", "power_loss", "thermostat_freeze"}


def test_evaluate_thirty_days_reports_every_scenario_through_the_worker(tmp_path):
    report, truth = tmp_path / "report.json", tmp_path / "truth.jsonl"
    proc = subprocess.run([sys.executable, "-m", "streams.cli", "evaluate", "--seed", "7", "--days", "30",
                           "--json", str(report), "--truth", str(truth)],
                          capture_output=True, text=True, timeout=1500, cwd=tmp_path.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| scenario | incidents | detected | recall | precision | median delay |" in proc.stdout
    r = json.loads(report.read_text())
    assert sum(r["events"].values()) > 800_000 and set(r["events"]) == {"prescription", "claim", "waste", "telemetry"}
    by = {s["scenario"]: s for s in r["scenarios"]}
    assert set(by) == set(BY_NAME)  # every scenario listed, detected or not
    for name in IMPLEMENTED:
        assert by[name]["recall"] == 1.0 and by[name]["precision"] == 1.0, by[name]
        assert by[name]["median_delay_s"] is not None
    assert by["storage_overdue"]["median_delay_s"] >= 48 * 3600  # cannot be known before the 48 h limit
    assert by["power_loss"]["median_delay_s"] < 3 * 3600
    for name in ("too_many_drugs", "split_admission", "sensor_silent", "weight_loss_in_transit"):
        assert by[name]["recall"] == 0.0 and by[name]["precision"] is None  # honest zeros until they exist
    assert r["false_alarms_per_10k"] < 0.5
    lines = truth.read_text().splitlines()
    assert len(lines) == sum(s["incidents"] for s in r["scenarios"])
