"""Nothing lost when a worker dies; replays give the same alert ids."""
from __future__ import annotations

import copy
import signal
from collections import Counter
from datetime import datetime, timedelta, timezone


from connectors.kafka.broker import free_port
from models.contracts.records import load_schema
from tests.kafka_helpers import Worker, alerts_of, produce, read_topic


def over_supply(i, prescriber):
    e = copy.deepcopy(load_schema("prescription")["examples"][0])
    e.update(prescription_id=f"{prescriber}-RX{i:04d}", prescriber_id=prescriber, patient_id=f"patient-{i}",
             # one an hour: 400 in one hour would be a flood, capped at 20 alerts and a summary (models/engine/flood.py)
             event_time=(datetime(2026, 10, 1, tzinfo=timezone(timedelta(hours=8))) + timedelta(hours=i)).isoformat())
    e["items"][0]["days_supply"] = 10 + i % 5
    return e


def ids_for(bootstrap, prescriber, n):
    def enough(records):
        return len({a["alert_id"] for a in alerts_of(records) if a["entity"]["id"] == prescriber}) >= n
    recs = read_topic(bootstrap, "zhijian.alerts", enough, timeout=120)
    return {a["alert_id"] for a in alerts_of(recs) if a["entity"]["id"] == prescriber}


def test_killed_worker_loses_nothing_and_replay_gives_same_ids(broker, worker, tmp_path):
    bs = broker.bootstrap_servers
    prescriber = "RESTART-DOC"
    first = [over_supply(i, prescriber) for i in range(200)]
    second = [over_supply(i, prescriber) for i in range(200, 400)]
    # the session worker handles the first half, then dies without a clean shutdown
    produce(bs, "zhijian.prescriptions", [first[i:i + 20] for i in range(0, 200, 20)])
    assert len(ids_for(bs, prescriber, 200)) == 200
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait(10)
    # input keeps arriving while no worker runs
    produce(bs, "zhijian.prescriptions", [second[i:i + 20] for i in range(0, 200, 20)])
    # a new worker of the same group resumes from the committed offsets
    worker.port = free_port()
    worker.start()
    got = ids_for(bs, prescriber, 400)
    assert len(got) == 400

    # a second consumer group replays all input from the start: the same ids come out
    replay = Worker(bs, free_port(), tmp_path / "replay.log", env={"ZHIJIAN_APP_ID": "zhijian-replay"}).start()
    try:
        total = sum(1 for _ in first + second)
        replay.wait_metric("zhijian_events_total", total, timeout=240, stream="prescription")

        def counts(records):
            return Counter(a["alert_id"] for a in alerts_of(records) if a["entity"]["id"] == prescriber)

        # every alert id comes out of both groups, and the replay makes no new id
        recs = read_topic(bs, "zhijian.alerts", lambda rs: min(counts(rs).values(), default=0) >= 2, timeout=120)
        assert set(counts(recs)) == got
    finally:
        replay.proc.terminate()
        replay.proc.wait(20)
