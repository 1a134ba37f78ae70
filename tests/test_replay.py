"""Replay: files merged in event time, CSV mapping on the real Tuva claims, clear file errors."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from connectors.errors import ZhijianError
from connectors.mapping import Mapping
from connectors.replay import load_sources
from models.contracts import InvalidRecord, load_schema, validate
from tests.kafka_helpers import read_topic

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "claims-tuva"
MAPPINGS = Path(__file__).resolve().parents[1] / "connectors" / "mappings"


def reading(device, minute):
    e = copy.deepcopy(load_schema("telemetry")["examples"][0])
    e.update(device_id=device, temperature_c=5.0, event_time=f"2026-11-21T09:{minute:02d}:00+08:00")
    return e


def write_jsonl(path, events):
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def test_files_merge_in_event_time_order(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [reading("D", m) for m in (0, 10, 20)])
    b = write_jsonl(tmp_path / "b.jsonl", [reading("D", m) for m in (5, 15)])
    records = load_sources([f"telemetry={a}", f"telemetry={b}"], {})
    assert [r[2]["event_time"][14:16] for r in records] == ["00", "05", "10", "15", "20"]


def test_repeated_columns_and_real_tuva_rows_map_to_valid_claims():
    stream, mapping = Mapping.load(MAPPINGS / "tuva_medical_claim.toml")
    records = load_sources([f"claim={SHARED / 'medical_claim.csv'}"], {"claim": mapping})
    assert stream == "claim" and len(records) == 6075
    ok = 0
    for _, _, e in records:
        try:
            validate("claim", e)
            ok += 1
        except InvalidRecord:
            pass
    assert ok == 5443  # the rest: zero-unit lines, negative or over-total paid amounts — real data
    with_dx = next(e for _, _, e in records if e["claim_id"] == "1004555-3")
    assert with_dx["diagnoses"][:2] == ["Z9861", "I2510"] and with_dx["claim_type"] == "inpatient"
    assert with_dx["items"][0]["item_code"] == "93797"


def test_file_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ok": 1}\n{oops\n')
    with pytest.raises(ZhijianError, match="bad.jsonl line 2 is not JSON"):
        load_sources([f"telemetry={bad}"], {})
    with pytest.raises(ZhijianError, match="--map claim="):
        load_sources([f"claim={SHARED / 'medical_claim.csv'}"], {})
    with pytest.raises(ZhijianError, match="STREAM=PATH"):
        load_sources([f"fridge={bad}"], {})
    r = subprocess.run([sys.executable, "-m", "streams.cli", "replay", f"telemetry={bad}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "line 2 is not JSON" in r.stderr


def test_replay_real_claims_through_the_worker(broker, worker, tmp_path):
    before = worker.metric("zhijian_events_total", stream="claim")
    dead_before = sum(worker.metric("zhijian_invalid_records_total", stream="claim", reason=r)
                      for r in ("absurd_value", "missing_field", "wrong_type", "invalid_value"))
    r = subprocess.run([sys.executable, "-m", "streams.cli", "replay", "--bootstrap-servers",
                        broker.bootstrap_servers, f"claim={SHARED / 'medical_claim.csv'}",
                        "--map", f"claim={MAPPINGS / 'tuva_medical_claim.toml'}", "--batch", "200"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "replayed 6075 events to zhijian.claims" in r.stdout
    worker.wait_metric("zhijian_events_total", before + 5443, timeout=120, stream="claim")
    worker.wait_metric("zhijian_invalid_records_total", 173, timeout=60, stream="claim", reason="absurd_value")
    dead_after = sum(worker.metric("zhijian_invalid_records_total", stream="claim", reason=r)
                     for r in ("absurd_value", "missing_field", "wrong_type", "invalid_value"))
    assert dead_after - dead_before == 6075 - 5443


def test_single_event_replay_is_keyed_and_rate_limited(broker, worker, tmp_path):
    f = write_jsonl(tmp_path / "r.jsonl", [reading("REPLAY-D", m) for m in (20, 0, 10)])
    r = subprocess.run([sys.executable, "-m", "streams.cli", "replay", "--bootstrap-servers",
                        broker.bootstrap_servers, f"telemetry={f}", "--rate", "5"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    recs = read_topic(broker.bootstrap_servers, "zhijian.telemetry",
                      lambda rs: sum(x.key == b"REPLAY-D" for x in rs) >= 3)
    mine = [orjson.loads(x.value) for x in recs if x.key == b"REPLAY-D"]
    assert [e["event_time"][14:16] for e in mine] == ["00", "10", "20"]


def test_missing_value_markers_are_empty_cells_and_a_mapping_may_name_its_own(tmp_path):
    from connectors.mapping import Mapping

    m = tmp_path / "m.toml"
    m.write_text('stream = "claim"\nmissing = ["."]\n[fields]\ndoctor_id = "doc"\ndiagnoses = { columns = "dx_*" }\n')
    stream, mapping = Mapping.load(m)
    assert mapping.apply({"doc": ".", "dx_1": "NA", "dx_2": "I10"}) == {"diagnoses": ["NA", "I10"]}  # its own list
    default = Mapping({"doctor_id": "doc", "diagnoses": {"columns": "dx_*"}})
    assert default.apply({"doc": "NA", "dx_1": " NULL ", "dx_2": "I10", "dx_3": "-"}) == {"diagnoses": ["I10"]}
    m.write_text('stream = "claim"\nmissing = "NA"\n[fields]\nx = "x"\n')
    with pytest.raises(Exception, match="`missing` must be a list of strings"):
        Mapping.load(m)
