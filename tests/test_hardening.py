"""Regression tests for the records that once broke or blinded the worker, or leaked (issue 9), that no other
test names: claims dated 0001-01-01 or 9999-12-31, a key longer than 64 bytes, an unknown 1 MiB field kept in
detector state, the same alert counted a thousand times."""
import copy

import orjson

from models.contracts.pseudonym import Pseudonymizer
from streams.worker import metrics
from streams.worker.observe import Observer
from tests.test_ingest import example, ingest


def test_claims_dated_year_one_or_9999_are_refused_and_do_not_blind_duplicate_charges():
    ing = ingest("claim")
    base = example("claim")
    written = None
    refused = []
    for n, day in enumerate(["0001-01-01", "9999-12-31", "9999-12-31", "9999-12-31", "9999-12-31"]):
        bad = copy.deepcopy(base)
        bad["claim_id"] = f"BAD-{n}"
        bad["items"][0]["service_date"] = day
        out = ing.handle(orjson.dumps(bad), "zhijian.claims", 0, n, written)
        refused += [d.reason for d in out.dead]
        assert out.events == 0 and out.alerts == []
    assert set(refused) <= {"invalid_value", "absurd_value"} and len(refused) == 5
    # the duplicate charge that follows is still found, on the same partition, and no detector failed
    first, second = copy.deepcopy(base), copy.deepcopy(base)
    first["claim_id"], second["claim_id"] = "DUP-1", "DUP-2"
    outs = [ing.handle(orjson.dumps(c), "zhijian.claims", 0, 10 + i) for i, c in enumerate((first, second))]
    assert all(o.dead == [] for o in outs)
    dups = [a for o in outs for a in o.alerts if a.detector == "claim.duplicate_charge"]
    assert len(dups) == 1 and {e.event_id for e in dups[0].evidence} == {"DUP-1", "DUP-2"}


def test_a_key_is_taken_whole_not_truncated_at_64_bytes():
    a, b = b"k" * 64 + b"-one", b"k" * 64 + b"-two"
    assert Pseudonymizer(a)("110101199001011234") != Pseudonymizer(b)("110101199001011234")
    assert Pseudonymizer(a).key_id != Pseudonymizer(b).key_id


def test_an_unknown_megabyte_field_is_not_kept_in_detector_state():
    ing = ingest("telemetry")
    reading = example("telemetry", device_id="HUGE-1", padding="x" * (1 << 20))
    out = ing.handle(orjson.dumps(reading), "zhijian.telemetry", 0, 1)
    assert out.events == 1
    [runtime] = ing.detectors
    held = sum(len(orjson.dumps(task.snapshot())) for task in runtime.tasks.values())
    assert 0 < held < 20_000  # the silent-logger and excursion state of one device: its fields, not the event


def test_the_same_alert_a_thousand_times_is_counted_once():
    ing, observer = ingest("prescription"), Observer()
    rx = example("prescription", prescription_id="RX-REPEAT", prescriber_id="DOC-REPEAT")
    rx["items"][0]["days_supply"] = 30
    outs = [ing.handle(orjson.dumps(rx), "zhijian.prescriptions", 0, n).alerts for n in range(1000)]
    [first] = [a for a in outs[0] if a.detector == "prescription.over_supply"]
    assert all(first.alert_id in {a.alert_id for a in o} for o in outs)  # at-least-once: sent again, same id
    counted = metrics.ALERTS.labels("prescription", first.detector, first.severity, first.tier)
    before, repeated_before = counted._value.get(), metrics.ALERTS_REPEATED.labels("prescription")._value.get()
    for alerts in outs:
        for alert in alerts:
            observer.alert(alert)
    assert counted._value.get() - before == 1
    per_record = len(outs[0])
    assert metrics.ALERTS_REPEATED.labels("prescription")._value.get() - repeated_before == 999 * per_record


def test_the_lag_timer_survives_a_partition_taken_away_while_it_reads():
    """A broker's death moves partitions mid-call: the consumer then refuses the position of one it no longer owns.
    The timer raised, and a timer that raises stops the worker (seen killing the controller in the cluster run)."""
    import asyncio
    from types import SimpleNamespace

    from aiokafka.errors import IllegalStateError
    from aiokafka.structs import TopicPartition

    from streams.worker.app import Worker

    kept, gone = TopicPartition("zhijian.claims", 0), TopicPartition("zhijian.claims", 1)

    class Consumer:
        def assignment(self):
            return {kept, gone}

        async def highwaters(self, *tps):
            return {kept: 120, gone: 80}

        async def position(self, tp):
            if tp == gone:
                raise IllegalStateError(f"Partition {tp} is not assigned")
            return 100

    worker = SimpleNamespace(observer=SimpleNamespace(refresh=lambda: None), app=SimpleNamespace(consumer=Consumer()),
                             consumed={"claim": "zhijian.claims"}, processed={}, reported=set())
    asyncio.run(Worker.report_lag(worker))
    assert worker.reported == {("zhijian.claims", 0)}
    assert metrics.LAG.labels("zhijian.claims", "0")._value.get() == 20
