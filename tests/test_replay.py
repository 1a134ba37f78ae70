"""Replay: files merged in event time, CSV mapping on the real Tuva claims, clear file errors."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from connectors.errors import ZhijianError
from connectors.files.mapping import Mapping
from connectors.files.replay import load_sources
from models.contracts.records import InvalidRecord, load_schema, validate
from tests.kafka_helpers import alerts_of, read_topic

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "claims-tuva"
MAPPINGS = Path(__file__).resolve().parents[1] / "connectors" / "files" / "mappings"


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
    from connectors.files.mapping import Mapping

    m = tmp_path / "m.toml"
    m.write_text('stream = "claim"\nmissing = ["."]\n[fields]\ndoctor_id = "doc"\ndiagnoses = { columns = "dx_*" }\n')
    stream, mapping = Mapping.load(m)
    assert mapping.apply({"doc": ".", "dx_1": "NA", "dx_2": "I10"}) == {"diagnoses": ["NA", "I10"]}  # its own list
    default = Mapping({"doctor_id": "doc", "diagnoses": {"columns": "dx_*"}})
    assert default.apply({"doc": "NA", "dx_1": " NULL ", "dx_2": "I10", "dx_3": "-"}) == {"diagnoses": ["I10"]}
    m.write_text('stream = "claim"\nmissing = "NA"\n[fields]\nx = "x"\n')
    with pytest.raises(Exception, match="`missing` must be a list of strings"):
        Mapping.load(m)


CMS = Path(__file__).resolve().parent / "data" / "cms"


def cms_records():
    _, claims = Mapping.load(MAPPINGS / "cms_provider_claims.toml", {"beneficiary": str(CMS / "Beneficiary.csv")})
    _, people = Mapping.load(MAPPINGS / "cms_beneficiary.toml")
    return load_sources([f"claim={CMS / 'Inpatient.csv'}", f"claim={CMS / 'Outpatient.csv'}",
                         f"beneficiary={CMS / 'Beneficiary.csv'}"], {"claim": claims, "beneficiary": people})


def test_a_cms_export_maps_through_one_mapping_na_cells_join_computed_columns_and_procedure_lines():
    from connectors.files.replay import Refused

    records = cms_records()
    assert [s for _, s, _ in records[:3]] == ["beneficiary"] * 3  # reference data first
    people = {e["patient_id"]: e for _, s, e in records if s == "beneficiary"}
    assert people["BENE11003"] == {"schema_version": 1, "patient_id": "BENE11003", "event_time": "2009-12-31T00:00:00+00:00",
                                   "birth_date": "1936-08-01", "sex": "M", "death_date": "2009-06-30", "region": "52-590"}
    assert "death_date" not in people["BENE11001"]  # DOD "NA": no death
    claims = {e["claim_id"]: e for _, s, e in records if s == "claim" and not isinstance(e, Refused)}
    stay = claims["CLM46614"]
    assert validate("claim", dict(stay))
    assert (stay["claim_type"], stay["drg"], stay["principal_diagnosis"], stay["admitting_diagnosis"]) == \
        ("inpatient", "201", "486", "7866")
    assert stay["physicians"] == {"attending": "PHY390922", "other": ["PHY412132"]}  # OperatingPhysician NA: absent
    assert (stay["total_amount"], stay["fund_paid"], stay["deductible"]) == (27068.0, 26000.0, 1068.0)  # a sum
    assert stay["region"] == "39-230"  # joined from the beneficiary file
    assert [(i["item_code"], i["category"]) for i in stay["items"]] == [("201", "bed"), ("9904", "surgery"),
                                                                          ("3893", "surgery")]  # 9904.0 → 9904
    visit = claims["CLM121801"]
    assert visit["claim_type"] == "outpatient" and "admission_date" not in visit and visit["diagnoses"] == ["25000", "4019"]
    [refused] = [e for _, _, e in records if isinstance(e, Refused)]
    assert refused.line == 4 and "column ClaimEndDt: '2009-13-45' is not a date-time" in refused.detail
    assert len(claims) == 7 and all(validate("claim", dict(e)) for e in claims.values())


def test_mapping_errors_name_the_file_and_the_fix(tmp_path):
    m = tmp_path / "m.toml"
    m.write_text('stream = "claim"\n[join.people]\non = "BeneID"\n[fields]\nx = "x"\n')
    with pytest.raises(ZhijianError, match=r"\[join.people\] names no file; give it with --join people=PATH"):
        Mapping.load(m)
    with pytest.raises(ZhijianError, match="does not exist; give it with --join people=PATH"):
        Mapping.load(m, {"people": str(tmp_path / "nowhere.csv")})
    r = subprocess.run([sys.executable, "-m", "streams.cli", "replay", f"claim={CMS / 'Outpatient.csv'}",
                        "--map", f"claim={MAPPINGS / 'cms_provider_claims.toml'}", "--join", "people=x.csv",
                        "--join", f"beneficiary={CMS / 'Beneficiary.csv'}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--join people: no --map file has such a [join.NAME] table" in r.stderr
    m.write_text('stream = "claim"\n[fields]\nitems = { repeat = "proc", line = { c = "proc" } }\n')
    with pytest.raises(ZhijianError, match=r"repeat needs a column name with \{n\}"):
        Mapping.load(m)


def test_a_cms_export_replays_through_the_worker_death_sex_and_split_rules_fire(broker, worker):
    bs = broker.bootstrap_servers
    before = worker.metric("zhijian_reference_records_total", table="beneficiary", outcome="applied")
    cli = [sys.executable, "-m", "streams.cli", "replay", "--bootstrap-servers", bs,
           "--map", f"beneficiary={MAPPINGS / 'cms_beneficiary.toml'}",
           "--map", f"claim={MAPPINGS / 'cms_provider_claims.toml'}", "--join", f"beneficiary={CMS / 'Beneficiary.csv'}"]
    r = subprocess.run(cli + [f"beneficiary={CMS / 'Beneficiary.csv'}"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    worker.wait_metric("zhijian_reference_records_total", before + 3, table="beneficiary", outcome="applied")
    judged = worker.metric("zhijian_events_total", stream="claim")
    r = subprocess.run(cli + [f"claim={CMS / 'Inpatient.csv'}", f"claim={CMS / 'Outpatient.csv'}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "replayed 7 events to zhijian.claims; 1 rows refused by the mapping went to zhijian.deadletter" in r.stdout
    worker.wait_metric("zhijian_events_total", judged + 7, timeout=180, stream="claim")  # all seven judged

    wanted = {"claim.after_death": "CLM624349", "claim.sex_age_conflict": "CLM189947",
              "claim.split_admission": "CLM46615"}

    def mine(records):
        found = {}
        for rec in records:
            a = orjson.loads(rec.value)
            claim = a["numbers"].get("claim_id") or a["numbers"].get("readmission_claim_id")
            if a["detector"] in wanted and wanted[a["detector"]] == claim:
                found[a["detector"]] = a
        return found

    seen: dict = {}

    def all_three(records):
        seen.update(mine(records))
        return set(seen) == set(wanted)

    try:
        read_topic(bs, "zhijian.alerts", all_three, timeout=60)
    except AssertionError:
        raise AssertionError(f"only {sorted(seen)} of {sorted(wanted)} were raised") from None
    alerts = seen
    death = alerts["claim.after_death"]
    assert (death["entity"], death["numbers"]["days_after_death"], death["numbers"]["last_service_date"]) == \
        ({"kind": "institution", "id": "PRV56011"}, 41, "2009-08-10")
    assert "BENE11003" not in orjson.dumps(death).decode()  # the patient appears as a pseudonym only
    sex = alerts["claim.sex_age_conflict"]
    assert sex["numbers"]["conflicts"] == [{"code": "6202", "rule": "female_genital", "allowed": "sex F"}]
    assert (sex["numbers"]["sex"], sex["numbers"]["age"]) == ("M", 66)
    split = alerts["claim.split_admission"]
    assert (split["numbers"]["first_claim_id"], split["numbers"]["gap_days"], split["numbers"]["diagnosis_groups"]) == \
        ("CLM46614", 4, ["486"])
    # the two stays of BENE11002 share only hypertension (4019): no split admission
    assert not any(a["numbers"].get("readmission_claim_id") == "CLM66049"
                   for a in alerts_of(read_topic(bs, "zhijian.alerts", lambda rs: True, timeout=5)))
    dead = read_topic(bs, "zhijian.deadletter", lambda rs: any(b"ClaimEndDt" in dict(x.headers).get(
        "zhijian.error.message", b"") for x in rs))
    [letter] = [x for x in dead if b"ClaimEndDt" in dict(x.headers).get("zhijian.error.message", b"")]
    h = dict(letter.headers)
    assert h["zhijian.error.reason"] == b"invalid_value" and h["zhijian.error.offset"] == b"4"
    assert orjson.loads(letter.value)["ClaimID"] == "CLM438021"
