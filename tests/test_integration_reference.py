"""A worker judges nothing before it has read the reference topics to their end (Kafka Streams' global-table
bootstrap): a claim already waiting when the worker starts is judged against the beneficiary published before
it — the settlement-after-death alert is raised, whichever of the worker's consumers is faster."""
from __future__ import annotations

import orjson

from connectors.kafka.broker import ensure_topics, free_port
from streams.settings import load_settings
from tests.kafka_helpers import Worker, produce, read_topic

PREFIX = "gate-it."


def test_a_waiting_claim_is_judged_against_the_beneficiaries_published_before_it(broker, tmp_path):
    bs = broker.bootstrap_servers
    env = {"ZHIJIAN_TOPIC_PREFIX": PREFIX, "ZHIJIAN_APP_ID": "gate-it-app"}
    settings = load_settings(overrides={"kafka": {"bootstrap_servers": bs}}, environ=env)
    ensure_topics(settings.kafka, settings.topic_specs())
    # many beneficiaries (the follower needs a moment for them), the dead one last
    people = [{"schema_version": 1, "patient_id": f"GATE-P{n}", "event_time": "2026-01-01T00:00:00+08:00",
               "birth_date": "1950-01-01", "sex": "F"} for n in range(60000)]
    people[-1]["death_date"] = "2026-02-01"
    _bulk(bs, settings.topic("beneficiaries"), people)
    claim = {"schema_version": 1, "claim_id": "GATE-CL1", "event_time": "2026-03-01T10:00:00+08:00",
             "institution_id": "GATE-PH", "doctor_id": "GATE-PH-D1", "patient_id": people[-1]["patient_id"],
             "claim_type": "pharmacy", "diagnoses": ["I10"],
             "items": [{"item_code": "D-AML5", "category": "drug", "quantity": 28, "unit_price": 1.0, "amount": 28.0,
                        "service_date": "2026-03-01"}],
             "total_amount": 28.0, "fund_paid": 16.8, "settlement_site": "GATE-PH"}
    produce(bs, settings.topic("claims"), [claim], key=claim["patient_id"])
    w = Worker(bs, free_port(), tmp_path / "worker.log", env).start()
    try:
        found = read_topic(bs, settings.topic("alerts"), lambda rs: any(b"GATE-CL1" in r.value for r in rs), timeout=180)
        [alert] = [orjson.loads(r.value) for r in found if b"GATE-CL1" in r.value]
        assert alert["detector"] == "claim.after_death" and alert["numbers"]["days_after_death"] == 28
        assert w.metric("zhijian_reference_records_total", table="beneficiary", outcome="applied") == 60000
    finally:
        w.proc.terminate()
        w.proc.wait(30)


def _bulk(bs, topic, values):
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bs, linger_ms=20)
    for v in values:
        p.send(topic, key=v["patient_id"].encode(), value=orjson.dumps(v))
    p.flush()
    p.close()
