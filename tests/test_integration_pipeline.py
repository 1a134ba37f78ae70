"""End to end on the embedded Apache Kafka broker with real Kafka clients (kafka-python, Debian's kcat)."""
from __future__ import annotations

import copy
import shutil
import subprocess

import orjson
import pytest

from models.contracts.alert import alert_id
from models.contracts.records import load_schema
from models.contracts.pseudonym import Pseudonymizer
from tests.kafka_helpers import alerts_of, produce, read_topic


def reading(device, minute, temp):
    e = copy.deepcopy(load_schema("telemetry")["examples"][0])
    e.update(device_id=device, temperature_c=temp, event_time=f"2026-11-20T10:{minute:02d}:00+08:00")
    return e


def alerts_for(bootstrap, entity, n, timeout=60):
    recs = read_topic(bootstrap, "zhijian.alerts",
                      lambda rs: sum(orjson.loads(r.value)["entity"]["id"] == entity for r in rs) >= n, timeout)
    return [a for a in alerts_of(recs) if a["entity"]["id"] == entity]


def test_excursion_alert_has_id_entity_numbers_and_evidence(broker, worker):
    bs = broker.bootstrap_servers
    meta = produce(bs, "zhijian.telemetry", [reading("IT-F1", 0, 5.0), reading("IT-F1", 5, 10.5),
                                             reading("IT-F1", 10, 11.2), reading("IT-F1", 15, 4.5)], key="IT-F1")
    opened, closed = alerts_for(bs, "IT-F1", 2)
    assert opened["status"] == "open" and closed["status"] == "closed"
    assert opened["detector"] == "coldchain.excursion" and opened["entity"] == {"kind": "device", "id": "IT-F1"}
    start_t = 1795140300.0  # 2026-11-20T10:05:00+08:00 = 02:05Z
    assert opened["alert_id"] == closed["alert_id"] == alert_id(
        "coldchain.excursion", "1", "device", "IT-F1", f"heat@{start_t}")
    assert closed["numbers"]["peak_c"] == 11.2 and closed["numbers"]["duration_minutes"] == 10.0
    ev = opened["evidence"][0]
    assert (ev["topic"], ev["partition"], ev["offset"]) == ("zhijian.telemetry", meta[1].partition, meta[1].offset)
    assert ev["event_id"] == "IT-F1@2026-11-20T10:05:00+08:00"


@pytest.mark.parametrize("value,reason", [
    (b"{oops", "not_json"),
    (orjson.dumps({"schema_version": 1, "device_id": "IT-BAD"}), "missing_field"),
    (orjson.dumps({**reading("IT-BAD", 0, 5.0), "schema_version": 9}), "unknown_schema_version"),
    (orjson.dumps({**reading("IT-BAD", 0, 5.0), "temperature_c": 4000}), "absurd_value"),
])
def test_bad_record_lands_in_dead_letter_with_reason(broker, worker, value, reason):
    bs = broker.bootstrap_servers
    before = worker.metric("zhijian_invalid_records_total", stream="telemetry", reason=reason)
    [meta] = produce(bs, "zhijian.telemetry", [value], key="IT-BAD")

    def found(records):
        return any(r.value == value for r in records)

    dead = [r for r in read_topic(bs, "zhijian.deadletter", found) if r.value == value][0]
    h = dict(dead.headers)
    assert h["zhijian.error.reason"] == reason.encode()
    assert h["zhijian.error.topic"] == b"zhijian.telemetry"
    assert (int(h["zhijian.error.partition"]), int(h["zhijian.error.offset"])) == (meta.partition, meta.offset)
    assert dead.key == b"IT-BAD"
    worker.wait_metric("zhijian_invalid_records_total", before + 1, stream="telemetry", reason=reason)
    # and the agent is still alive: a good record after the bad one is processed
    produce(bs, "zhijian.telemetry", [reading("IT-AFTER-" + reason, 0, 12.0)], key="IT-AFTER-" + reason)
    assert alerts_for(bs, "IT-AFTER-" + reason, 1)


def test_envelope_of_prescriptions_yields_over_supply_alert(broker, worker):
    bs = broker.bootstrap_servers
    base = load_schema("prescription")["examples"][0]
    ok = {**base, "prescription_id": "IT-RX-OK", "prescriber_id": "IT-DOC"}
    over = copy.deepcopy({**base, "prescription_id": "IT-RX-OVER", "prescriber_id": "IT-DOC"})
    over["items"][0]["days_supply"] = 30
    ok["items"] = [{**base["items"][0], "days_supply": 5}]
    produce(bs, "zhijian.prescriptions", [[ok, over]], key=base["patient_id"])
    [a] = alerts_for(bs, "IT-DOC", 1)
    assert a["alert_id"] == alert_id("prescription.over_supply", "1", "prescriber", "IT-DOC", "IT-RX-OVER")
    assert a["numbers"]["max_days_supply"] == 30 and a["numbers"]["limit_days"] == 7
    assert base["patient_id"].encode() not in orjson.dumps(a)
    assert base["items"][0]["name"].encode() not in orjson.dumps(a)  # a drug's name is free text: never copied
    assert a["pseudonym_key_id"] == Pseudonymizer.from_env().key_id  # the key its patient pseudonyms came from


def test_kcat_producer_gets_alert_and_dead_letter(broker, worker):
    bs = broker.bootstrap_servers
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed: `make setup` installs the Debian package"
    exe, env = [kcat], None  # Debian's own kcat and librdkafka, nothing preloaded
    good = orjson.dumps(reading("IT-KCAT", 30, 13.4))
    subprocess.run(exe + ["-P", "-b", bs, "-t", "zhijian.telemetry", "-k", "IT-KCAT"], input=good,
                   env=env, check=True, timeout=30)
    subprocess.run(exe + ["-P", "-b", bs, "-t", "zhijian.telemetry", "-k", "IT-KCAT"], input=b"temperature=13.4",
                   env=env, check=True, timeout=30)
    [a] = alerts_for(bs, "IT-KCAT", 1)
    assert a["numbers"]["peak_c"] == 13.4 and "above 8" in a["reason"]
    out = subprocess.run(exe + ["-C", "-b", bs, "-t", "zhijian.deadletter", "-e", "-q", "-f", "%s|%h\n"],
                         env=env, capture_output=True, timeout=60, check=True).stdout.decode()
    line = next(x for x in out.splitlines() if x.startswith("temperature=13.4|"))
    assert "zhijian.error.reason=not_json" in line


def test_records_that_once_crashed_the_agent_are_accounted_for_and_a_huge_one_becomes_a_reference(broker, worker):
    bs = broker.bootstrap_servers
    deep = b'{"schema_version":1,"x":' + b"[" * 300 + b"]" * 300 + b"}"
    envelope = b"[" + orjson.dumps(reading("IT-NEST", 0, 5.0)) + b"," + deep + b"]"
    huge = b"{" + b"x" * (950 * 1024)  # not JSON, and too large to go to the dead-letter topic as it is
    values = [orjson.dumps({**reading("IT-V10", 0, 5.0), "schema_version": 1.0}), envelope, huge]
    metas = produce(bs, "zhijian.telemetry", values, key="IT-HARD")
    offsets = {m.offset for m in metas}

    def mine(records):
        return [r for r in records if dict(r.headers).get("zhijian.error.offset", b"-1").decode().isdigit()
                and int(dict(r.headers)["zhijian.error.offset"]) in offsets
                and int(dict(r.headers)["zhijian.error.partition"]) == metas[0].partition]
    dead = mine(read_topic(bs, "zhijian.deadletter", lambda rs: len(mine(rs)) >= 3))
    by_reason = {dict(r.headers)["zhijian.error.reason"].decode(): r for r in dead}
    assert set(by_reason) == {"unknown_schema_version", "missing_field", "not_json"}
    nested = by_reason["missing_field"]  # it cannot be re-encoded alone: its whole record, and its place in it
    assert nested.value == envelope and dict(nested.headers)["zhijian.error.batch_index"] == b"1"
    reference = by_reason["not_json"]
    assert dict(reference.headers)["zhijian.error.reference"] == b"1"
    ref = orjson.loads(reference.value)
    assert ref["size"] == len(huge) and ref["reference"]["offset"] == metas[2].offset and len(ref["sha256"]) == 64
    # the good reading beside the nested event was judged, and the agent lives on
    produce(bs, "zhijian.telemetry", [reading("IT-AFTER-HARD", 0, 12.0)], key="IT-AFTER-HARD")
    assert alerts_for(bs, "IT-AFTER-HARD", 1)
    read = worker.metric("zhijian_events_read_total", stream="telemetry")
    judged = worker.metric("zhijian_events_total", stream="telemetry")
    refused = worker.metric("zhijian_events_refused_total", stream="telemetry")
    assert read == judged + refused and refused >= 3


def test_an_excursion_names_the_stock_in_the_device_and_a_bad_stock_record_is_dead_lettered(broker, worker):
    bs = broker.bootstrap_servers
    stock = {"schema_version": 1, "device_id": "IT-INV", "facility_id": "CDC-1",
             "event_time": "2026-11-20T08:00:00+08:00",
             "lots": [{"lot": "202609A17", "product_code": "HEPB-10", "doses": 400, "freeze_sensitive": True},
                      {"lot": "202608M02", "product_code": "MMR-1", "doses": 120, "freeze_sensitive": False}]}
    bad = {**stock, "device_id": "IT-OTHER"}  # keyed IT-INV2 but names another device
    before = worker.metric("zhijian_reference_records_total", table="inventory", outcome="applied")
    produce(bs, "zhijian.inventory", [stock], key="IT-INV")
    [bad_meta] = produce(bs, "zhijian.inventory", [bad], key="IT-INV2")
    worker.wait_metric("zhijian_reference_records_total", before + 1, table="inventory", outcome="applied")
    produce(bs, "zhijian.telemetry", [reading("IT-INV", 0, 5.0), reading("IT-INV", 5, -1.2)], key="IT-INV")
    [opened] = alerts_for(bs, "IT-INV", 1)
    assert opened["detector"] == "coldchain.excursion" and opened["numbers"]["kind"] == "freeze"
    s = opened["numbers"]["stock"]
    assert (s["lots"], s["doses"], s["doses_at_risk"]) == (2, 520, 400)  # MMR is not freeze-sensitive
    assert [x["lot"] for x in s["listed"]] == ["202609A17", "202608M02"] and s["as_of"] == stock["event_time"]
    assert opened["reason"].endswith("2 lots, 400 of 520 doses at risk")
    dead = [r for r in read_topic(bs, "zhijian.deadletter", lambda rs: any(r.key == b"IT-INV2" for r in rs))
            if r.key == b"IT-INV2"][0]
    h = dict(dead.headers)
    assert h["zhijian.error.reason"] == b"invalid_value" and b"not its device_id" in h["zhijian.error.message"]
    assert (h["zhijian.error.topic"], int(h["zhijian.error.offset"])) == (b"zhijian.inventory", bad_meta.offset)
