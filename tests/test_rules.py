"""The four first rules: the right alert, entity, numbers and evidence — and no false ones."""
import orjson

from models.contracts.alert import Source, alert_id
from models.engine.runtime import PartitionedRuntime
from models.rules.claims.duplicate_charge import DuplicateChargeConfig, DuplicateChargeDetector
from models.rules.coldchain.excursion import ExcursionDetector, ExcursionLimits
from models.rules.prescription.over_supply import OverSupplyDetector, SupplyLimits
from models.rules.waste.storage_overdue import StorageOverdueDetector

T0 = 1767225600.0  # 2026-01-01T00:00:00Z


def src(offset, event_id="e", topic="t"):
    return Source(topic, 0, offset, event_id)


# --- prescription.over_supply -----------------------------------------------------------
def rx(visit, days, reason=None, rid="RX1"):
    e = {"prescription_id": rid, "institution_id": "H1", "department": "IM", "prescriber_id": "D1",
         "patient": "Pa", "visit_type": visit, "_t": T0, "items": [{"drug_code": "A", "name": "drug A", "days_supply": days}]}
    if reason:
        e["long_term_reason"] = reason
    return e


def test_over_supply_limits_per_visit_type():
    d = PartitionedRuntime([OverSupplyDetector()])
    assert d.process(rx("outpatient", 7), src(1)) == []
    assert d.process(rx("emergency", 3), src(2)) == []
    assert d.process(rx("inpatient", 30), src(3)) == []
    assert d.process(rx("long_term", 84, reason="stable hypertension"), src(4)) == []
    [a] = d.process(rx("emergency", 4), src(5, "RX1"))
    assert (a.detector, a.entity_kind, a.entity_id, a.numbers["limit_days"]) == ("prescription.over_supply", "prescriber", "D1", 3)
    assert a.alert_id == alert_id("prescription.over_supply", "1", "prescriber", "D1", "RX1")
    assert a.evidence == [src(5, "RX1")]
    [a] = d.process(rx("long_term", 35), src(6))
    assert a.numbers["limit_days"] == 28 and "without a long-term reason" in a.reason
    [a] = d.process(rx("long_term", 90, reason="x"), src(7))
    assert a.numbers["limit_days"] == 84 and a.score == 90 / 84


def test_over_supply_thresholds_are_configuration():
    d = PartitionedRuntime([OverSupplyDetector(SupplyLimits(outpatient_days=3))])
    [a] = d.process(rx("outpatient", 5), src(1))
    assert a.numbers["limit_days"] == 3


# --- claim.duplicate_charge --------------------------------------------------------------
def claim(cid, day="2026-01-05", inst="H1", patient="Pa", code="CBC", amount=25.0, service_date=None):
    item = {"item_code": code, "quantity": 1, "unit_price": amount, "amount": amount}
    if service_date:
        item["service_date"] = service_date
    return {"claim_id": cid, "institution_id": inst, "patient": patient, "doctor_id": "D1",
            "event_time": f"{day}T10:00:00+08:00", "_t": T0, "items": [item]}


def test_duplicate_charge_alert_names_both_claims():
    d = PartitionedRuntime([DuplicateChargeDetector()])
    assert d.process(claim("C1"), src(1, "C1")) == []
    assert d.process(claim("C2", day="2026-01-06"), src(2)) == []  # another day
    assert d.process(claim("C3", inst="H2"), src(3)) == []  # another institution
    assert d.process(claim("C4", code="ECG"), src(4)) == []  # another item
    [a] = d.process(claim("C5"), src(5, "C5"))
    assert a.entity_id == "H1" and a.tier == "violation"
    assert a.numbers["first_claim_id"] == "C1" and a.numbers["duplicate_claim_id"] == "C5"
    assert [e.event_id for e in a.evidence] == ["C1", "C5"]
    # The same duplicate redelivered raises nothing again: its version was applied, and its alert went out with it
    # (a state that holds a claim is captured only after the claim's alerts were sent).
    assert d.process(claim("C5"), src(5, "C5")) == []


def test_a_correction_re_sent_the_next_day_keeps_its_undated_lines_on_the_day_first_settled():
    """A discharge settled on the 5th (its drug line undated) is corrected on the 6th; the patient's outpatient visit
    on the 6th bills the same drug. Not a duplicate: the inpatient line belongs to the 5th (seed 7 of the simulated
    region raised it before)."""
    d = PartitionedRuntime([DuplicateChargeDetector()])
    assert d.process(claim("C1", code="D-OME20"), src(1, "C1")) == []
    fixed = claim("R1", day="2026-01-06", code="D-OME20") | {"original_claim_id": "C1", "adjustment": "replacement",
                                                              "version": 2}
    assert d.process(fixed, src(2, "R1")) == []
    assert d.process(claim("C2", day="2026-01-06", code="D-OME20"), src(3, "C2")) == []
    [a] = d.process(claim("C3", code="D-OME20"), src(4, "C3"))  # billed again on the 5th: a duplicate of the correction
    assert a.numbers["first_claim_id"] == "C1" and a.numbers["duplicate_claim_id"] == "C3"


def test_duplicate_charge_uses_service_date_and_expires_state():
    d = PartitionedRuntime([DuplicateChargeDetector(DuplicateChargeConfig(retention_days=2))])
    assert d.process(claim("C1", service_date="2026-01-01"), src(1)) == []
    assert len(d.process(claim("C2", day="2026-01-02", service_date="2026-01-01"), src(2))) == 1
    d.process(claim("C3", day="2026-01-10", code="ECG"), src(3))  # moves the horizon on
    assert d.process(claim("C4", day="2026-01-10", service_date="2026-01-01"), src(4)) == []
    [(_, key, kept)] = d.task(0).changes()[-1:]  # the patient's state: a line older than the retention is not kept
    kept = orjson.loads(orjson.dumps(kept))  # as the changelog record holds it
    assert key == "Pa" and list(kept[2]["lines"]) == ["H1|ECG|2026-01-10"]


# --- waste.storage_overdue ---------------------------------------------------------------
def waste(kind, hours, manifest="M1", offset=0):
    return ({"manifest_id": manifest, "event_type": kind, "institution_id": "H1", "category": "sharps",
             "weight_kg": 3.0, "container_count": 1, "_t": T0 + hours * 3600}, src(offset, f"{manifest}/{kind}"))


def test_storage_in_time_raises_nothing():
    d = PartitionedRuntime([StorageOverdueDetector()])
    assert d.process(*waste("generated", 0)) == []
    assert d.process(*waste("handed_over", 47.9)) == []
    assert d.process(*waste("generated", 200, manifest="M2")) == []


def test_storage_overdue_is_reported_once_by_the_watermark():
    d = PartitionedRuntime([StorageOverdueDetector()])
    d.process(*waste("generated", 0))
    [a] = d.process(*waste("generated", 49, manifest="M2"))
    assert a.numbers["manifest_id"] == "M1" and not a.numbers["handed_over"]
    assert a.numbers["stored_hours"] == 49.0
    assert a.alert_id == alert_id("waste.storage_overdue", "1", "institution", "H1", "M1")
    assert d.process(*waste("handed_over", 55)) == []  # already reported
    [late] = d.process(*waste("handed_over", 98, manifest="M2"))
    assert late.numbers["stored_hours"] == 49.0 and late.numbers["handed_over"] and late.severity == "medium"


# --- coldchain.excursion / breach --------------------------------------------------------
def reading(d, minute, temp, device="F1"):
    e = {"device_id": device, "device_kind": "fridge", "facility_id": "CDC", "temperature_c": temp,
         "_t": T0 + 60 * minute}
    return d.process(e, src(minute, f"{device}@{minute}"))


def test_one_excursion_not_one_alert_per_reading():
    d = PartitionedRuntime([ExcursionDetector(ExcursionLimits(heat_breach_minutes=600))])
    alerts = [a for m in range(0, 120, 5) for a in reading(d, m, 9.0 if 10 <= m < 60 else 5.0)]
    assert [(a.detector, a.status) for a in alerts] == [("coldchain.excursion", "open"), ("coldchain.excursion", "closed")]
    opened, closed = alerts
    assert opened.alert_id == closed.alert_id
    assert closed.numbers["duration_minutes"] == 50.0 and closed.numbers["peak_c"] == 9.0
    assert not closed.numbers["breached"]


def test_freeze_breach_after_60_minutes_is_critical():
    d = PartitionedRuntime([ExcursionDetector()])
    out = [a for m in range(0, 70, 10) for a in reading(d, m, -1.0)]
    assert [a.detector for a in out] == ["coldchain.excursion", "coldchain.breach"]
    breach = out[1]
    assert breach.severity == "critical" and breach.numbers["duration_minutes"] == 60.0
    assert [e.offset for e in breach.evidence] == [0, 60]


def test_redelivered_readings_do_not_reopen():
    d = PartitionedRuntime([ExcursionDetector()])
    first = reading(d, 0, 9.0)
    assert reading(d, 0, 9.0) == []  # at-least-once redelivery
    assert len(first) == 1


def test_alert_ids_are_deterministic_across_runs():
    def run():
        d = PartitionedRuntime([ExcursionDetector(ExcursionLimits(heat_breach_minutes=30))])
        return [a.alert_id for m in range(0, 90, 5) for a in reading(d, m, 10.0 if m < 60 else 4.0)]
    assert run() == run() and len(run()) == 3


def test_storage_state_shrinks_once_disposed_and_is_forgotten_after_its_retention():
    d = PartitionedRuntime([StorageOverdueDetector()])
    d.process(*waste("generated", 0))
    assert len(d.process(*waste("handed_over", 50))) == 1
    d.process(*waste("received", 52))
    assert len(d.task(0)) == 1  # reported, remembered until disposed of
    d.process(*waste("disposed", 60))
    # only that a later stage was seen stays (a late 'generated' must not open a wait), until the retention ends
    assert d.task(0).store_of("waste.storage_overdue", waste("disposed", 60)[0]["manifest_id"]) == {"later": True}
    d.task(0).advance(d.task(0).watermark + 31 * 86400)
    assert len(d.task(0)) == 0


def test_a_claim_repeating_a_thousand_lines_is_one_alert_naming_them_all():
    from models.engine.runtime import Runtime

    d = Runtime([DuplicateChargeDetector()])
    lines = [{"item_code": f"LAB-{i}", "quantity": 1, "unit_price": 10.0, "amount": 10.0} for i in range(1000)]

    def claim(cid, offset):
        return d.process({"claim_id": cid, "institution_id": "H1", "patient": "Pz", "doctor_id": "D1",
                          "event_time": "2026-01-05T10:00:00+08:00", "_t": 1767578400.0, "items": lines},
                         Source("zhijian.claims", 0, offset, cid))
    assert claim("C1", 1) == []
    [a] = claim("C2", 2)
    assert a.numbers["lines"] == 1000 and a.numbers["duplicate_amount"] == 10000.0
    assert len(a.numbers["repeated"]) == 50 and a.numbers["repeated"][0]["first_claim_id"] == "C1"
    assert [e.event_id for e in a.evidence] == ["C1", "C2"]
    assert claim("C2", 2) == []  # a redelivery: its version is applied and its alert went out with it


def test_an_excursion_ends_at_its_last_reading_when_the_device_falls_silent_past_the_gap_limit():
    from models.engine.runtime import Runtime

    d = Runtime([ExcursionDetector(ExcursionLimits(heat_breach_minutes=60, max_gap_minutes=120))])

    def reading(minute, temp, offset):
        e = {"device_id": "F9", "device_kind": "fridge", "facility_id": "CDC-1", "temperature_c": temp,
             "_t": 1767225600.0 + 60 * minute}
        return d.process(e, Source("zhijian.telemetry", 0, offset, f"F9@{minute}"))
    assert [a.status for a in reading(0, 26.3, 1)] == ["open"]  # a logger activated on a desk, then silent 6 h
    alerts = reading(352, 27.5, 2)
    closed = [a for a in alerts if a.status == "closed"][0]
    assert closed.numbers["end"] == closed.numbers["start"] and closed.numbers["ended_by_gap_minutes"] == 352.0
    assert not any(a.detector == "coldchain.breach" for a in alerts)  # six unknown hours are not a breach
    assert [a.evidence[-1].offset for a in [closed]] == [1]


# --- WHO alarm rules: single event, cumulative, severe heat; minutes per day ----------------------
def who_reading(d, minute, temp, day="2026-01-01"):
    e = {"device_id": "W1", "device_kind": "fridge", "facility_id": "CDC", "temperature_c": temp,
         "_t": T0 + 60 * minute, "event_time": f"{day}T00:00:00+08:00"}
    return d.process(e, src(minute, f"W1@{minute}"))


def breaches(alerts):
    return [(a.numbers["rule"], a.numbers.get("duration_minutes", a.numbers.get("window_minutes")))
            for a in alerts if a.detector == "coldchain.breach"]


def test_short_warm_spells_add_up_to_the_cumulative_heat_alarm_once_per_window():
    d = PartitionedRuntime([ExcursionDetector()])  # the defaults: 600 min single, 600 min in any 24 h
    alerts = []
    for spell in range(12):  # every 2 h a 55-minute warm spell: the 11th brings the sum to 600 min
        start = 120 * spell
        alerts += [a for m in range(start, start + 120, 5) for a in who_reading(d, m, 9.5 if m < start + 55 else 5.0)]
    [(rule, minutes)] = breaches(alerts)
    assert rule == "heat_cumulative" and minutes == 600.0  # no spell alone came near 10 h
    cum = [a for a in alerts if a.detector == "coldchain.breach"][0]
    assert cum.alert_id == alert_id("coldchain.breach", "1", "device", "W1", f"heat_cumulative@{cum.event_t}")
    assert cum.numbers["limit_minutes"] == 600.0 and cum.numbers["window_hours"] == 24.0
    assert cum.event_t == T0 + 60 * (120 * 10 + 50)  # 10 × 55 min, then 50 min into the 11th spell
    more = [a for m in range(1440, 1800, 5) for a in who_reading(d, m, 9.5 if m % 120 < 55 else 5.0)]
    assert breaches(more) == []  # the same window does not alarm twice


def test_one_long_excursion_is_a_single_event_breach_not_also_a_cumulative_one():
    d = PartitionedRuntime([ExcursionDetector()])
    alerts = [a for m in range(0, 720, 10) for a in who_reading(d, m, 12.0)]
    assert breaches(alerts) == [("heat_single", 600.0)]


def test_severe_heat_at_45_for_an_hour_and_freeze_at_minus_half_for_an_hour():
    d = PartitionedRuntime([ExcursionDetector()])
    temps = [20.0, 44.9, 45.0, 46.0, 47.0, 45.5, 45.0, 45.2, 30.0]  # ≥ 45 from minute 20 to 70
    alerts = [a for i, t in enumerate(temps) for a in who_reading(d, 10 * i, t)]
    severe = [a for a in alerts if a.detector == "coldchain.breach"]
    assert breaches(severe) == [("severe_heat", 60.0)] and severe[0].severity == "critical"
    assert severe[0].numbers["peak_c"] == 47.0 and [e.offset for e in severe[0].evidence] == [20, 80]
    f = PartitionedRuntime([ExcursionDetector()])
    alerts = [a for m in range(0, 70, 10) for a in who_reading(f, m, -0.5)]  # at −0.5 °C counts as freezing
    assert breaches(alerts) == [("freeze_single", 60.0)]


def test_every_excursion_alert_carries_the_minutes_out_of_range_of_its_day():
    d = PartitionedRuntime([ExcursionDetector()])
    a1 = [a for m in range(0, 60, 10) for a in who_reading(d, m, 9.0 if m < 30 else 5.0)]      # 30 min warm
    a2 = [a for m in range(60, 120, 10) for a in who_reading(d, m, -1.0 if m < 80 else 5.0)]   # 20 min freezing
    closed_heat, closed_freeze = [a for a in a1 + a2 if a.status == "closed"]
    assert closed_heat.numbers["day"] == "2026-01-01"
    assert closed_heat.numbers["day_minutes"] == {"heat": 30.0, "freeze": 0.0}
    assert closed_freeze.numbers["day_minutes"] == {"heat": 30.0, "freeze": 20.0}
    [opened] = who_reading(d, 130, 9.0, day="2026-01-02")  # a new local day starts from zero
    assert opened.numbers["day"] == "2026-01-02" and opened.numbers["day_minutes"] == {"heat": 0.0, "freeze": 0.0}


# --- coldchain.abnormal_dynamics: keeps learning ----------------------------------------------------
def test_a_new_setpoint_alarms_once_becomes_the_normal_and_a_later_failure_alarms_again():
    import random

    from models.rules.coldchain.dynamics import DynamicsDetector
    from models.engine.runtime import Runtime

    rng = random.Random(11)
    d = Runtime([DynamicsDetector()])
    alerts = []
    for hour in range(60 * 24):  # hourly readings for 60 days
        day = hour // 24
        setpoint = 5.0 if day < 15 else 3.5  # the unit is re-set colder on day 15 (a legitimate change)
        temp = setpoint + 0.4 * ((hour % 24) in range(9, 17)) + rng.gauss(0, 0.15)
        if day >= 45:
            temp += 0.3 * (day - 44)  # a compressor wearing out from day 45
        e = {"device_id": "F7", "device_kind": "fridge", "facility_id": "CDC", "temperature_c": temp,
             "_t": T0 + 3600 * hour}
        alerts += [(day, a.numbers["direction"]) for a in d.process(e, src(hour, f"F7@{hour}"))]
    assert [x for x in alerts if x[0] < 45] == [(15, "fall")]  # the new setpoint: one alarm, then it is the normal
    [(day, direction)] = [x for x in alerts if x[0] >= 45][:1]  # the failure after it alarms again,
    # within 4 days of a 0.3 °C/day ramp (a true sliding day since version 3: the end of day 48), before any excursion
    assert direction == "rise" and day <= 49


def test_a_claims_corrections_are_judged_by_its_latest_version_whatever_their_order():
    """Claims as feeds send them (issue 21): an original, a replacement, a refund under a new settlement id that
    voids it, and the same versions again or late. The duplicate rule judges the latest version: a replacement takes
    its earlier version's lines back, a void takes them back for good, a stale version changes nothing, and an
    alert whose grounds a correction removed is withdrawn under its id."""
    import itertools

    def run(order):
        d = PartitionedRuntime([DuplicateChargeDetector()])
        out = []
        for n, e in enumerate(order):
            out += [(a.alert_id, a.status) for a in d.process(e, src(n + 1, e["claim_id"]))]
        return out

    first = claim("C1")
    again = claim("C2")  # bills C1's CT again: a duplicate
    corrected = claim("C2") | {"adjustment": "replacement", "version": 2, "items": [
        {"item_code": "ECG", "category": "exam", "quantity": 1, "unit_price": 40.0, "amount": 40.0}]}
    refund = claim("R-77") | {"original_claim_id": "C2", "adjustment": "void", "version": 3}
    [(aid, status)] = run([first, again])
    assert status == "open"
    assert run([first, again, corrected]) == [(aid, "open"), (aid, "withdrawn")]
    assert run([first, again, again, corrected, again]) == [(aid, "open"), (aid, "withdrawn")]  # re-sent, stale
    assert run([first, again, refund]) == [(aid, "open"), (aid, "withdrawn")]
    # a replacement that still bills the CT again keeps the alert open, under the same id
    still = again | {"adjustment": "replacement", "version": 2}
    assert run([first, again, still]) == [(aid, "open"), (aid, "open")]
    # any order of arrival ends in the final state's verdict: the last record of the id is what stands
    for order in itertools.permutations([again, corrected, refund]):
        final = {}
        for alert_id, status in run([first, *order]):
            final[alert_id] = status
        assert all(s == "withdrawn" for s in final.values()), (order, final)
    # voiding the first claim takes its CT back: a later C3 billing the CT is its first billing
    void_first = claim("C1") | {"adjustment": "void", "version": 2}
    assert run([first, void_first, claim("C3")]) == []
