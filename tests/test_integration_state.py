"""Detector state survives kill -9: a worker killed with an excursion open and a manifest waiting
for its handover is replaced by one that restores both from the changelogs and carries on."""
from __future__ import annotations

import signal
import time
from typing import Any

import orjson
import pytest

from connectors.kafka.broker import free_port
from connectors.kafka.producer import partition_for
from tests.kafka_helpers import Worker, alerts_of, broker_with_topics, produce, read_topic

APP = "zhijian-state-test"
T0 = "2026-03-01T08:{:02d}:00+00:00"


def reading(device, minute, temp):
    return {"schema_version": 1, "device_id": device, "device_kind": "fridge", "facility_id": "CDC-STATE",
            "event_time": T0.format(minute), "temperature_c": temp}


def manifest(mid, kind, when):
    return {"schema_version": 1, "manifest_id": mid, "event_type": kind, "event_time": when,
            "institution_id": "H-STATE", "category": "infectious", "weight_kg": 12.0, "container_count": 2}


def alerts_about(bs, entity, until):
    recs = read_topic(bs, "zhijian.alerts", lambda rs: until([a for a in alerts_of(rs) if a["entity"]["id"] == entity]),
                      timeout=120)
    return [a for a in alerts_of(recs) if a["entity"]["id"] == entity]


@pytest.fixture
def own_broker(tmp_path):
    """A broker of its own: on the session's, the session worker would raise the same alerts by itself."""
    with broker_with_topics(tmp_path / "broker.log", app_id=APP) as b:
        yield b


def test_state_is_restored_after_kill_9(own_broker, tmp_path):
    bs = own_broker.bootstrap_servers
    env = {"ZHIJIAN_APP_ID": APP}
    first = Worker(bs, free_port(), tmp_path / "first.log", env=env).start()
    # an excursion opens on a fridge; a manifest is generated and not handed over
    produce(bs, "zhijian.telemetry", [reading("STATE-F1", 0, 5.0), reading("STATE-F1", 5, 12.0),
                                      reading("STATE-F1", 10, 12.5)], key="STATE-F1")
    produce(bs, "zhijian.waste", [manifest("STATE-M1", "generated", "2026-03-01T08:00:00+00:00")], key="STATE-M1")
    [opened] = alerts_about(bs, "STATE-F1", lambda a: len(a) >= 1)
    assert opened["status"] == "open" and opened["numbers"]["peak_c"] == 12.0
    first.wait_metric("zhijian_events_total", 1, stream="waste")
    first.wait_metric("zhijian_checkpoint_records_total", 2, timeout=30)  # the commit after them wrote the state
    time.sleep(2)  # and one more commit interval, so the offsets of the last records are committed too
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)

    second = Worker(bs, free_port(), tmp_path / "second.log", env=env).start()
    try:
        # the fridge comes back to range: the excursion it remembers closes, under the same id
        produce(bs, "zhijian.telemetry", [reading("STATE-F1", 30, 5.5)], key="STATE-F1")
        alerts = alerts_about(bs, "STATE-F1", lambda a: any(x["status"] == "closed" for x in a))
        [closed] = [a for a in alerts if a["status"] == "closed"]
        assert second.metric("zhijian_events_total", stream="telemetry") >= 1  # the replacement closed it
        assert closed["alert_id"] == opened["alert_id"]
        assert closed["numbers"]["duration_minutes"] == 25.0 and closed["numbers"]["peak_c"] == 12.5
        # three days later on the manifest's partition: its restored deadline (48 h) has passed
        parts = 4
        other = next(f"STATE-M{i}" for i in range(2, 500)
                     if partition_for(f"STATE-M{i}", parts) == partition_for("STATE-M1", parts))
        produce(bs, "zhijian.waste", [manifest(other, "generated", "2026-03-04T08:00:00+00:00")], key=other)
        [overdue] = alerts_about(bs, "H-STATE", lambda a: any(x["detector"] == "waste.storage_overdue" for x in a))
        assert overdue["numbers"]["manifest_id"] == "STATE-M1" and not overdue["numbers"]["handed_over"]
        assert second.metric("zhijian_state_restore_seconds") > 0
    finally:
        second.proc.terminate()
        second.proc.wait(30)


def test_a_restored_state_behind_the_committed_offsets_is_logged_and_counted(own_broker, tmp_path):
    """A checkpoint that lands after a newer one (written late by a worker the group had dropped) leaves the
    changelog behind the group's offsets: the records between never reach the detectors after the next restore.
    Nothing else would say so; the replacement must log the partition and offsets and count it. Here the late
    write is replayed by hand: the runtime's record of an earlier checkpoint, written again after the last."""
    from kafka import KafkaProducer

    from connectors.kafka.topics import changelog_name
    from models.engine.runtime import META
    from streams.worker.checkpoint import record_key

    bs = own_broker.bootstrap_servers
    env = {"ZHIJIAN_APP_ID": APP}
    changelog, meta_key = changelog_name(APP, "telemetry"), record_key(META, "")
    part = partition_for("GAP-F1", 4)

    def runtime_records() -> list[Any]:
        return [r for r in read_topic(bs, changelog, lambda rs: True, timeout=10)
                if r.key == meta_key and r.partition == part]

    first = Worker(bs, free_port(), tmp_path / "first.log", env=env).start()
    try:
        produce(bs, "zhijian.telemetry", [reading("GAP-F1", m, 5.0) for m in (0, 1, 2)], key="GAP-F1")
        first.wait_metric("zhijian_events_total", 3, stream="telemetry")
        deadline = time.monotonic() + 60
        while not (early := [r for r in runtime_records() if orjson.loads(r.value)["meta"].get("applied") == 2]):
            assert time.monotonic() < deadline, "no checkpoint of the first three records"
            time.sleep(0.5)
        produce(bs, "zhijian.telemetry", [reading("GAP-F1", m, 5.0) for m in (3, 4, 5, 6)], key="GAP-F1")
        first.wait_metric("zhijian_events_total", 7, stream="telemetry")
        time.sleep(3)  # two commit intervals: the state of all seven, then their offsets
    finally:
        first.proc.terminate()  # a clean stop: its last checkpoint and offsets are committed
        first.proc.wait(30)
    assert orjson.loads(runtime_records()[-1].value)["meta"]["applied"] == 6
    late = KafkaProducer(bootstrap_servers=bs)
    late.send(changelog, key=meta_key, value=early[-1].value, partition=part).get(10)  # the late, older checkpoint
    late.close()

    second = Worker(bs, free_port(), tmp_path / "second.log", env=env).start()
    try:
        produce(bs, "zhijian.telemetry", [reading("GAP-F1", 7, 5.0)], key="GAP-F1")
        assert second.wait_metric("zhijian_state_gaps_total", 1, stream="telemetry", timeout=60) == 1
        line = next(x for x in (tmp_path / "second.log").read_text().splitlines() if "never applied" in x)
        assert (f"zhijian.telemetry[{part}]: the restored state has applied records up to offset 2, but the group "
                f"had committed 7: 4 records were never applied to it") in line and "[ERROR]" in line
    finally:
        second.proc.terminate()
        second.proc.wait(30)
