"""Ingestion without a broker: envelopes, dead letters, pseudonymization, detector failures."""
import copy

import orjson

from models.contracts.records import load_schema
from models.contracts.pseudonym import Pseudonymizer
from streams.worker.plan import build_detectors
from streams.worker.ingest import Ingest
from streams.settings import load_settings

PSEUDO = Pseudonymizer(b"test-key-0123456789abcdef-0123456789")


def ingest(stream):
    return Ingest(stream, build_detectors(load_settings(environ={}))[stream], PSEUDO)


def example(stream, **changes):
    e = copy.deepcopy(load_schema(stream)["examples"][0])
    e.update(changes)
    return e


def test_bad_record_is_dead_lettered_unchanged_with_coordinates():
    out = ingest("telemetry").handle(b"\xff not json", "zhijian.telemetry", 3, 17)
    [d] = out.dead
    assert d.value == b"\xff not json" and d.reason == "not_json" and d.index is None
    h = dict(d.headers("zhijian.telemetry", 3, 17))
    assert h["zhijian.error.partition"] == b"3" and h["zhijian.error.offset"] == b"17"
    assert h["zhijian.error.reason"] == b"not_json"


def test_envelope_keeps_good_events_and_refuses_bad_ones():
    good = example("telemetry")
    bad = example("telemetry", temperature_c="hot")
    raw = orjson.dumps([good, bad, example("telemetry", event_time="2026-11-24T03:10:00+08:00")])
    out = ingest("telemetry").handle(raw, "zhijian.telemetry", 0, 5)
    assert out.events == 2
    [d] = out.dead
    assert d.index == 1 and d.reason == "wrong_type" and orjson.loads(d.value) == bad
    assert [a.detector for a in out.alerts] == ["coldchain.excursion"]


def test_patient_id_is_pseudonymized_before_detectors():
    raw_id = "110101199001011234"
    ing = ingest("claim")
    ing.handle(orjson.dumps(example("claim", patient_id=raw_id)), "c", 0, 1)
    out = ing.handle(orjson.dumps(example("claim", patient_id=raw_id, claim_id="CL-2")), "c", 0, 2)
    [a] = out.alerts
    assert a.numbers["patient"] == PSEUDO(raw_id)
    assert raw_id.encode() not in a.to_json()


def test_a_failing_detector_dead_letters_instead_of_raising():
    class Broken:
        name, version, stream = "broken", "1", "waste"

        def process(self, event, source):
            raise KeyError("boom")

    out = Ingest("waste", [Broken()], PSEUDO).handle(orjson.dumps(example("waste")), "w", 0, 9)
    [d] = out.dead
    assert d.reason == "detector_error" and "broken" in d.detail


# -- regressions: records that once made ingestion raise (and were lost with the good events beside them)

def test_a_schema_version_that_equals_one_in_python_is_refused_not_a_crash():
    for version in (1.0, True):
        out = ingest("telemetry").handle(orjson.dumps(example("telemetry", schema_version=version)), "t", 0, 1)
        assert (out.read, out.events, out.refused) == (1, 0, 1)
        assert [d.reason for d in out.dead] == ["unknown_schema_version"]


def test_impossible_dates_are_refused_with_the_field_named():
    for field, value, reason in (("admission_date", "0000-01-01", "invalid_value"),
                                 ("discharge_date", "1850-03-01", "absurd_value")):
        claim = example("claim", claim_type="inpatient", admission_date="2026-11-01", discharge_date="2026-11-05")
        claim[field] = value
        out = ingest("claim").handle(orjson.dumps(claim), "c", 0, 1)
        [d] = out.dead
        assert d.reason == reason and field in d.detail and out.events == 0


def test_an_event_nested_past_the_encoders_limit_is_dead_lettered_with_its_record_and_the_others_judged():
    deep = b'{"schema_version":1,"x":' + b"[" * 300 + b"]" * 300 + b"}"
    raw = b"[" + orjson.dumps(example("telemetry")) + b"," + deep + b"]"
    out = ingest("telemetry").handle(raw, "t", 0, 1)
    assert (out.read, out.events, out.refused) == (2, 1, 1)
    [d] = out.dead
    assert d.index == 1 and d.value == raw  # it cannot be re-encoded alone: the whole record, and its place in it


def test_whatever_goes_wrong_the_record_is_set_aside_not_lost():
    class Exploding(dict):
        def get(self, *a):
            raise RuntimeError("a case nobody foresaw")

    ing = ingest("waste")
    ing._handle = lambda *a: (_ for _ in ()).throw(RuntimeError("boom"))  # noqa: the outermost guard
    out = ing.handle(b"{}", "w", 0, 3)
    assert (out.read, out.refused) == (1, 1) and [d.reason for d in out.dead] == ["unprocessable"]
    assert out.dead[0].value == b"{}"


def test_an_event_stamped_far_ahead_is_refused_and_does_not_blind_or_trip_the_clock():
    from datetime import datetime, timezone

    ing = ingest("telemetry")
    t0 = 1795140000.0  # 2026-11-20T09:20:00Z

    def reading(device, minutes, written_after_s=60.0):
        when = datetime.fromtimestamp(t0 + 60 * minutes, tz=timezone.utc).isoformat()
        e = example("telemetry", device_id=device, temperature_c=5.0, event_time=when)
        return ing.handle(orjson.dumps(e), "zhijian.telemetry", 0, int(minutes), t0 + 60 * minutes + written_after_s)

    outs = [reading(d, m) for m in range(0, 120, 5) for d in ("IT-A", "IT-B")]
    ahead = reading("IT-C", 119 + 47 * 60, written_after_s=-47 * 3600)  # its clock 47 h fast, sent live
    assert [d.reason for d in ahead.dead] == ["absurd_value"] and "after its record" in ahead.dead[0].detail
    outs += [reading(d, m) for m in range(120, 180, 5) for d in ("IT-A", "IT-B")]
    assert [a for o in outs for a in o.alerts] == []  # no device looked silent: the clock did not jump
    replayed = reading("IT-D", 185, written_after_s=30 * 86400)  # a file replayed a month later: fine
    assert replayed.dead == [] and replayed.events == 1


def test_a_wrong_year_inside_a_replayed_file_is_judged_but_does_not_move_the_clock():
    from datetime import datetime, timezone

    ing = ingest("telemetry")
    written = 1795140000.0  # the replay runs now (2026-11-20); its readings are of 2019
    t2019 = datetime(2019, 3, 1, 10, tzinfo=timezone.utc).timestamp()

    def reading(n, device, t, written_at):
        e = example("telemetry", device_id=device, temperature_c=5.0,
                    event_time=datetime.fromtimestamp(t, tz=timezone.utc).isoformat())
        return ing.handle(orjson.dumps(e), "zhijian.telemetry", 2, n, written_at)

    outs = [reading(n, d, t2019 + n * 300, written + n) for n in range(24) for d in ("R-A", "R-B")]
    typo = reading(24, "R-C", t2019 + 4 * 365 * 86400, written + 24)  # 2019 typed as 2023
    assert typo.events == 1 and typo.held == 1 and typo.dead == [] and typo.newest_t is None
    outs += [reading(n, d, t2019 + n * 300, written + n) for n in range(25, 40) for d in ("R-A", "R-B")]
    # the clock did not jump four years: no device of the partition looks silent, nothing was held but the typo
    assert [a for o in outs for a in o.alerts] == [] and sum(o.held for o in outs) == 0
    # a real jump — the next file starts a week later — is confirmed by its third reading
    later = [reading(n, "R-A", t2019 + 7 * 86400 + n * 300, written + n) for n in range(40, 45)]
    assert [o.held for o in later] == [1, 1, 0, 0, 0]
    # and live data after the backfill moves the clock at once
    assert reading(46, "R-A", written + 40, written + 46).held == 0
    assert ing._clocks[2].newest == written + 40
