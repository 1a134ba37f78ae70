"""`zhijian risk` on the real broker: it reads the claims only as far as the worker's group has committed,
publishes every institution's score for each complete day, and exports metrics without institution labels."""
from __future__ import annotations

import random
import subprocess
import sys
import time
import urllib.request

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from connectors.kafka.broker import ensure_topics, free_port
from connectors.kafka.producer import EnvelopeProducer
from streams.settings import load_settings
from tests.kafka_helpers import read_topic

PREFIX = "risk-it."
APP = "risk-it-app"


def claim(n, inst, patient, amount, day, doctor=None):
    return {"schema_version": 1, "claim_id": f"RI{n}", "event_time": f"{day}T10:00:00+08:00", "institution_id": inst,
            "doctor_id": doctor or f"{inst}-D1", "patient_id": patient, "claim_type": "outpatient",
            "diagnoses": ["J06.9"], "items": [{"item_code": "S-CONSULT", "category": "exam", "quantity": 1,
                                               "unit_price": amount, "amount": amount}],
            "total_amount": amount, "fund_paid": round(amount / 2, 2), "settlement_site": inst}


def commit(bootstrap, topic, offsets):
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=APP, enable_auto_commit=False)
    c.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
    c.close()


def test_the_daily_scores_follow_the_worker_and_rank_the_fraud_first(broker, tmp_path):
    bs = broker.bootstrap_servers
    config = tmp_path / "risk.toml"
    config.write_text(f'[topics]\nprefix = "{PREFIX}"\ninput_partitions = 2\n[worker]\napp_id = "{APP}"\n'
                      '[risk]\nmin_claims = 20\nmin_labels = 4\nmin_per_class = 1\n')
    settings = load_settings([str(config)], overrides={"kafka": {"bootstrap_servers": bs}}, environ={})
    ensure_topics(settings.kafka, settings.topic_specs())
    claims_topic = settings.topic("claims")
    rng = random.Random(4)
    events, n = [], 0
    for i, size in enumerate((40, 60, 90, 140, 210, 320)):  # honest sites of every size: two visits a patient
        for k in range(size):
            n += 1
            events.append(claim(n, f"C{i}", f"C{i}-P{k // 2}", round(rng.gauss(100, 8), 2), f"2026-11-0{1 + k % 3}"))
    for k in range(60):  # a small clinic billing under other sites' physicians (挂证), dearer claims
        n += 1
        events.append(claim(n, "K9", f"K9-P{k // 2}", round(rng.gauss(160, 8), 2), f"2026-11-0{1 + k % 3}",
                            doctor=f"C{k % 6}-D1"))
    events.sort(key=lambda e: e["event_time"])
    producer = EnvelopeProducer(settings.kafka, settings.input_topics(), 2)
    for e in events:
        producer.add("claim", e["patient_id"], e)
    producer.flush()
    ends_day3 = {p: o for p, o in _ends(bs, claims_topic).items()}
    late = [claim(900000 + p, "C0", f"LATE{p}", 100.0, "2026-11-04") for p in range(8)]  # day 4, both partitions
    for e in late:
        producer.add("claim", e["patient_id"], e)
    producer.close()
    ends = _ends(bs, claims_topic)
    # the worker has judged everything up to day 3 only: day 2 is the last complete day the scorer may see
    commit(bs, claims_topic, ends_day3)
    # past inspections: the clinic was found billing under borrowed physicians, three sites were clean
    findings = tmp_path / "findings.csv"
    findings.write_text("institution_id,verdict,decided_on\nK9,fraud,2026-06-30\nC0,clean,2026-05-01\n"
                        "C2,clean,2026-05-02\nC4,clean,2026-05-03\n")
    out = subprocess.run([sys.executable, "-m", "streams.cli", "verdicts", "import", str(findings), "--config",
                          str(config), "--bootstrap-servers", bs], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "4 verdicts (1 fraud or violation, 3 clean) published" in out.stdout, out.stderr
    port = free_port()
    log = open(tmp_path / "risk.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "risk", "--config", str(config), "--bootstrap-servers",
                             bs, "--metrics-port", str(port), "--idle-close", "3600"], stdout=log, stderr=subprocess.STDOUT)
    try:
        scores_topic = settings.topic("institution-scores")
        day2 = [orjson.loads(r.value) for r in read_topic(bs, scores_topic, lambda rs: len(rs) >= 7, timeout=90)]
        assert {r["day"] for r in day2} == {"2026-11-02"} and all(r["complete"] for r in day2)
        top = min(day2, key=lambda r: r["rank"])
        assert (top["institution_id"], top["of"]) == ("K9", 7) and top["grade"] in ("red", "orange")
        assert "shared_physicians" in top["top"] and top["features"]["shared_physicians"] == 1.0
        assert all(r["grade"] == "blue" for r in day2 if r["institution_id"] != "K9")
        # the learned score: trained on the four findings, it puts the clinic first among all seven
        learned = {r["institution_id"]: r["learned_score"] for r in day2}
        assert max(learned, key=learned.get) == "K9" and learned["K9"] > 0.5
        assert top["labelled"] == "fraud_or_violation" and all(r["money_at_risk"] > 0 for r in day2)
        time.sleep(3)
        assert len(read_topic(bs, scores_topic, lambda rs: True, timeout=3)) == 7  # day 3 waits for the worker
        commit(bs, claims_topic, ends)  # the worker has judged day 4's claims: day 3 is complete
        records = [orjson.loads(r.value) for r in read_topic(bs, scores_topic, lambda rs: len(rs) >= 14, timeout=90)]
        assert {r["day"] for r in records[7:]} == {"2026-11-03"}
        # the scorer counts a day's records once its producer's flush returns: a moment after a reader sees them
        deadline = time.monotonic() + 10
        while True:
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            if "zhijian_institution_scores_published_total 14.0" in metrics or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "zhijian_institution_scores_published_total 14.0" in metrics
        assert 'zhijian_institutions_graded{grade="blue"} 6.0' in metrics
        assert "K9" not in metrics and "C0" not in metrics  # no institution in a label
        assert 'zhijian_risk_labelled_institutions{verdict="clean"} 3.0' in metrics
        logged = (tmp_path / "risk.log").read_text()
        assert "published the risk scores of 7 institutions for 2026-11-02" in logged  # it logs what it publishes
        assert "learned score from 4 labelled institutions (1 positive)" in logged
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def _ends(bs, topic):
    c = KafkaConsumer(bootstrap_servers=bs)
    tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic))]
    ends = {tp.partition: o for tp, o in c.end_offsets(tps).items()}
    c.close()
    return ends
