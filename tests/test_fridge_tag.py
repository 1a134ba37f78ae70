"""Berlinger Fridge-tag and Q-tag exports: every real export in ../shared/data/coldchain/raw imports; a broken one
is refused with its line; zhijian's excursion rule agrees with the loggers' own alarms where both can be seen."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta, timezone
from pathlib import Path

import pytest

from connectors.files.fridge_tag import FridgeTagError, parse, telemetry_events

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "coldchain" / "raw"
FILES = sorted(RAW.rglob("*.txt"))
CST = timezone(timedelta(hours=8))
pytestmark = pytest.mark.skipif(not FILES, reason="../shared/data/coldchain is not beside the checkout")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_real_export_imports(path):
    export = parse(path.read_text(encoding="utf-8", errors="replace"))
    assert export.serial and export.device
    assert export.days or export.readings  # a history, readings, or both
    for e in telemetry_events(export, CST, "FAC-1"):
        assert e["device_id"] == export.serial and e["event_time"].endswith("+08:00")


def test_the_models_read_as_the_loggers_wrote_them():
    by_name = {p.name: parse(p.read_text(errors="replace")) for p in FILES}
    two_l = by_name["130500109088_202206081014.txt"]
    assert two_l.device == "Q-tag Fridge-tag 2 L" and len(two_l.days) == 38 and len(two_l.readings) == 10653
    assert [(r.direction, r.threshold_c, r.minutes) for r in two_l.rules] == [("low", 2.0, 60.0), ("high", 8.0, 60.0)]
    ultra = by_name["100800001215_202304201410.txt"]
    assert sum(t is None for _, t in ultra.readings) > 0  # '--.-' is a missing reading, not a number
    assert len(telemetry_events(ultra, CST, "F")) == sum(t is not None for _, t in ultra.readings)
    qtag = by_name["RCPJ00010_02_202211090128.txt"]
    assert {(r.direction, r.mode, r.threshold_c, r.minutes) for r in qtag.rules} == {
        ("high", "single", 8.0, 30.0), ("high", "cumulative", 8.0, 60.0), ("low", "cumulative", 2.0, 60.0),
        ("low", "single", 2.0, 30.0)}
    # its own alarms, from Res: — a rule may hold several, one per line; TS E empty while still on
    assert qtag.interval_minutes == 10.0
    assert [(a.rule, a.start, a.minutes, a.alarmed_at, a.end, a.extreme_c) for a in qtag.alarms] == [
        ("1", "2022-11-08 21:50", 219.0, "2022-11-08 22:20", None, 24.5),
        ("2", "2022-11-08 21:50", 219.0, "2022-11-08 22:50", None, None),
        ("4", "2022-11-08 05:51", 598.0, "2022-11-08 07:34", None, None),
        ("5", "2022-11-08 12:16", 145.0, "2022-11-08 12:46", "2022-11-08 14:41", 0.9),
        ("5", "2022-11-08 14:52", 32.0, "2022-11-08 15:22", "2022-11-08 15:24", 1.4),
        ("5", "2022-11-08 15:39", 31.0, "2022-11-08 16:09", "2022-11-08 16:10", 1.4)]
    missing = by_name["missing_temps.txt"].days
    assert [d.min_c for d in missing] == [3.5, None, 4.0] and missing[1].sensor_timeout_minutes == 1440


def test_a_broken_export_is_refused_with_its_line(tmp_path):
    good = (RAW / "msupply_temperature-sensor/data/FridgeTag 2L/130500109088_202206081014.txt").read_text(errors="replace")
    lines = good.splitlines()
    lines[600] = "\t2022-05-32 25:00\t4.0\t"
    with pytest.raises(FridgeTagError, match=r"line 601: expected a time"):
        parse("\n".join(lines))
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(lines))
    r = subprocess.run([sys.executable, "-m", "streams.cli", "import", "fridge-tag", str(bad), "--out",
                        str(tmp_path / "x.jsonl")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "line 601" in r.stderr and str(bad) in r.stderr


def test_import_writes_events_and_summaries_and_agrees_with_the_loggers(tmp_path):
    out, summaries = tmp_path / "t.jsonl", tmp_path / "s.jsonl"
    r = subprocess.run([sys.executable, "-m", "streams.cli", "import", "fridge-tag", *map(str, FILES), "--out",
                        str(out), "--summaries", str(summaries), "--agreement"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    events = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(events) == sum(len(telemetry_events(parse(p.read_text(errors="replace")), CST, "F")) for p in FILES)
    days = [json.loads(x) for x in summaries.read_text().splitlines()]
    assert len(days) == sum(len(parse(p.read_text(errors="replace")).days) for p in FILES)
    # every day agrees, 2022-05-02 on the 2 L logger included: six hours without a reading between two above
    # +8 °C end the excursion (max_gap_minutes) instead of counting as a breach — the logger did not count them
    assert "130500109088_202206081014.txt                   38     38" in r.stdout
    assert "100800001215_202304201410.txt                    4      4" in r.stdout
    assert "logger no alarm" not in r.stdout and "logger alarm" not in r.stdout
    # the Q-tags' own alarms (Res:) against zhijian's rules at their thresholds: every alarm the logger recorded
    # for a rule zhijian has is matched within two logging intervals
    assert ("rule 1 high single 8 °C / 30 min: logger 2022-11-08 22:20; zhijian 2022-11-08 22:29; matched 1/1"
            in r.stdout)
    assert "rule 2 high cumulative 8 °C / 60 min: logger 2022-11-08 22:50; zhijian 2022-11-08 22:59; matched 1/1" in r.stdout
    assert "rule 5 low single 2 °C / 30 min: logger 2022-11-08 12:46, 2022-11-08 15:22, 2022-11-08 16:09; " in r.stdout
    assert r.stdout.count("matched 1/1") == 4 and "matched 3/3" in r.stdout
    assert "rule 4 low cumulative 2 °C / 60 min: logger 2022-11-08 07:34; zhijian (no such rule)" in r.stdout
