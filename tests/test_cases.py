"""Cases (workbench): the alerts of one incident are one case with a deterministic id; the lifecycle refuses what
it does not allow."""
import pytest

from streams.lab.simulator import REGION_CONFIG, RegionSimulator, SimulationConfig
from models.contracts.alert import Source
from streams.workbench.cases import CaseBook, CaseError
from models.contracts.records import validate
from streams.worker.plan import build_detectors
from streams.settings import load_settings


def simulated_alerts(scenario, stream, days=21, seed=5):
    sim = RegionSimulator(SimulationConfig(seed=seed, days=days, scale=0.4, scenario_rate=8, warmup_days=0.3,
                                           scenarios=(scenario,)))
    [rt] = build_detectors(load_settings([str(REGION_CONFIG)], environ={}))[stream]
    alerts = []
    for offset, (s, key, event) in enumerate(sim.until(sim.t0 + days * 86400)):
        if s == stream:
            alerts += [a.to_dict() for a in rt.process(validate(s, event), Source(s, 0, offset, key))]
    return alerts, [x for x in sim.truth if x["scenario"] == scenario]


def test_a_carrier_short_weighting_for_days_is_one_case_per_incident_and_a_replay_rebuilds_the_same_ids():
    alerts, truth = simulated_alerts("weight_loss_in_transit", "waste")
    weight = [a for a in alerts if a["detector"] == "waste.weight_discrepancy"]
    assert len(weight) > len(truth) >= 1
    book = CaseBook()
    for a in alerts:
        book.add(a)
    cases = [c for c in book.cases.values() if c.family == "waste.weight_discrepancy"]
    # one case per incident, not one per manifest — incidents of one carrier that overlap or follow within the
    # case gap (a week) are one incident going on
    incidents = []
    for x in sorted(truth, key=lambda x: (x["entity"]["id"], x["start_t"])):
        last = incidents[-1] if incidents else None
        if last and last[0] == x["entity"]["id"] and x["start_t"] - last[2] <= book.gap_s:
            last[2] = max(last[2], x["end_t"])
        else:
            incidents.append([x["entity"]["id"], x["start_t"], x["end_t"]])
    assert len(truth) > len(incidents) > 1  # the test holds merged and separate incidents
    assert sorted(c.entity_id for c in cases) == sorted(i[0] for i in incidents)
    assert sum(c.alerts for c in cases) == len(weight)
    again = CaseBook()  # the alert topic read again, its partitions interleaved otherwise: one entity's order holds
    for a in sorted(alerts, key=lambda a: a["entity"]["id"]):
        again.add(a)
    assert set(again.cases) == set(book.cases)


def test_a_fridge_that_lost_power_is_one_cold_chain_case_and_a_closing_excursion_updates_it():
    alerts, truth = simulated_alerts("power_loss", "telemetry", days=10)
    book = CaseBook()
    for a in alerts:
        book.add(a)
    per_device = {}
    for c in book.cases.values():
        per_device.setdefault(c.entity_id, []).append(c)
    for incident in truth:
        [case] = per_device[incident["entity"]["id"]]
        detectors = {a["detector"] for a in alerts if a["alert_id"] in case.alert_ids}
        assert {"coldchain.device_status", "coldchain.excursion"} <= detectors and case.family == "coldchain"
        # an excursion's open and closed records are one alert of the case
        assert case.alerts == len({a["alert_id"] for a in alerts if a["entity"]["id"] == incident["entity"]["id"]})


def test_the_lifecycle_refuses_what_it_does_not_allow():
    book = CaseBook()
    c = book.add({"alert_id": "x", "detector": "claim.duplicate_charge", "entity": {"kind": "institution", "id": "H1"},
                  "event_time": "2026-10-01T10:00:00+00:00", "score": 2.0, "numbers": {"duplicate_amount": 120.5}})
    assert c.money == 120.5
    with pytest.raises(CaseError, match="unknown status"):
        c.change("archived", user="u", at="t")
    with pytest.raises(CaseError, match="a verdict is given when the case is closed"):
        c.change("acknowledged", user="u", at="t", verdict="fraud")
    c.change("in_progress", user="u", at="t")
    with pytest.raises(CaseError, match="a case in_progress cannot become acknowledged"):
        c.change("acknowledged", user="u", at="t")
    with pytest.raises(CaseError, match="needs a verdict"):
        c.change("closed", user="u", at="t", verdict="guilty")
    event = c.change("closed", user="analyst-7", at="2026-10-02T09:00:00+08:00", verdict="fraud", comment="confirmed")
    assert event.to_dict() == {"case_id": c.case_id, "kind": "status", "at": "2026-10-02T09:00:00+08:00",
                               "user": "analyst-7", "status": "closed", "verdict": "fraud", "comment": "confirmed"}
    with pytest.raises(CaseError, match="a case closed cannot become open"):
        c.change("open", user="u", at="t")
    later = book.add({"alert_id": "y", "detector": "claim.duplicate_charge", "entity": {"kind": "institution", "id": "H1"},
                      "event_time": "2026-10-02T10:00:00+00:00", "score": 2.0})
    assert later.case_id != c.case_id and later.status == "open"  # a closed case is not reopened by a new alert


def test_the_queue_keeps_its_order_as_cases_change_grades_move_and_cases_close():
    from streams.workbench.console import Console
    from streams.workbench.store import Store

    console = Console(Store(":memory:"))

    def alert(n, inst, entity, score, day=1):
        return {"alert_id": f"q{n}", "detector": "claim.over_standard", "stream": "claim",
                "entity": {"kind": "patient", "id": entity}, "institution_id": inst, "region": "310101",
                "score": score, "event_time": f"2026-10-{day:02d}T10:00:00+00:00", "status": "open", "numbers": {}}

    for n, (inst, entity, score) in enumerate([("H1", "P1", 2.0), ("H2", "P2", 5.0), ("H3", "P3", 3.0)]):
        console.add_alert(alert(n, inst, entity, score))

    def order(**f):
        return [c.entity_id for c, _, _ in console.queue(f)]

    assert order() == ["P2", "P3", "P1"]  # no grades yet: strongest first
    console.add_alert(alert(9, "H1", "P1", 9.0, day=2))  # a stronger alert joins P1's case
    assert order() == ["P1", "P2", "P3"]
    console.add_score({"institution_id": "H3", "day": "2026-10-02", "score": 7.0, "grade": "red"})
    assert order() == ["P3", "P1", "P2"] and order(grade="red") == ["P3"]
    [p3] = [c for c, _, _ in console.queue({}) if c.entity_id == "P3"]
    assert console.points_total("H3") == 0.5 ** (1 / 180)  # one open case, a day before the newest alert
    console.change(p3.case_id, "li", "analyst", "closed", "fraud", "confirmed")
    assert console.points_total("H3") == 12 * 0.5 ** (1 / 180)  # the remembered total follows the verdict
    assert order() == ["P1", "P2", "P3"] and order(status="closed") == ["P3"]
    console.add_score({"institution_id": "H3", "day": "2026-10-03", "score": 1.0, "grade": "yellow"})
    assert order() == ["P1", "P2", "P3"] and console.cases_of("H3") == {p3.case_id}
    assert console.families == {"claim.over_standard"} and order(stream="waste") == []


def test_the_queue_learns_from_verdicts_which_cases_analysts_confirm():
    """Defrost-like excursions (short, just over 8 °C) are justified, long ones confirmed: once five verdicts of
    each kind are in, an open long excursion comes before an open short one with a stronger alert."""
    from streams.workbench.console import Console
    from streams.workbench.store import Store

    console = Console(Store(":memory:"))

    def excursion(n, minutes, peak, score):
        return {"alert_id": f"x{n}", "detector": "coldchain.excursion", "stream": "telemetry",
                "entity": {"kind": "device", "id": f"FR-{n}"}, "institution_id": "CDC-1", "region": "310101",
                "score": score, "event_time": f"2026-10-{1 + n % 28:02d}T10:00:00+00:00", "status": "closed",
                "numbers": {"kind": "heat", "duration_minutes": minutes, "peak_c": peak}}

    for n in range(10):
        long = n % 2 == 0
        console.add_alert(excursion(n, 300 if long else 20, 12.0 if long else 8.6, 2.0))
    cases = {c.entity_id: c for c, _, _ in console.queue({})}
    for n in range(10):
        assert not console.priority.ready
        console.change(cases[f"FR-{n}"].case_id, "wang", "operator", "closed",
                       "violation" if n % 2 == 0 else "justified", None)
    assert console.priority.ready and console.priority.seen == {True: 5, False: 5}
    console.add_alert(excursion(20, 15, 8.4, 5.0))  # short, but the stronger alert
    console.add_alert(excursion(21, 280, 11.5, 1.0))  # long
    assert [c.entity_id for c, _, _ in console.queue({"status": "open"})] == ["FR-21", "FR-20"]
    assert console.priority_of(cases["FR-0"]) > 0.5 > console.priority_of(cases["FR-1"])


def test_the_triage_measure_ranks_both_orders_on_the_same_open_cases():
    """zhijian triage's analyst on hand-made cases: over-supply of an antibiotic is confirmed, of a maintenance
    drug justified, the rules' score cannot tell them apart; after 50 verdicts the learned order's top 20 is
    all confirmed, the rules' order is not."""
    from types import SimpleNamespace

    from streams.lab.triage import work_the_queue

    cases, labels, strongest = [], {}, {}
    for n in range(300):
        fraud = n % 3 == 0
        cid = f"c{n:03d}"
        cases.append(SimpleNamespace(case_id=cid, family="prescription.over_supply", entity_kind="prescriber",
                                     stream="prescription", alerts=1, money=0.0, strongest_score=3.0 + (n % 7) / 10,
                                     first_seen=f"2026-10-01T{n % 24:02d}:00:00+00:00"))
        labels[cid] = "confirmed" if fraud else "justified"
        strongest[cid] = {"numbers": {"items": [{"atc_code": "J01CA04" if fraud else f"C0{n % 9 + 1}AA01"}]}}
    got = work_the_queue(cases, labels, strongest)
    assert got["learned"][0] == got["rules"][0]  # before any verdict the orders are the same
    assert got["learned"][50] == 1.0 > got["rules"][50]
    assert got["learned"][200] == 1.0


def test_each_group_of_group_visits_is_one_case_and_its_re_sent_alert_counts_once():
    """claim.group_visits names the group as its entity (issue 24): two groups at one clinic are two cases, and the
    alert re-sent as the group comes again updates its case."""
    from datetime import datetime

    from models.engine.runtime import Runtime
    from models.rules.claims.group_visits import GroupVisitsDetector

    rt, alerts, n = Runtime([GroupVisitsDetector()]), [], 0
    for day in (1, 8, 15, 22, 29):
        for start, people in ((0, ("Pa", "Pb", "Pc")), (30, ("Pd", "Pe", "Pf"))):
            for k, p in enumerate(people if day > 1 or start == 0 else ()):  # the second group starts a week later
                n += 1
                e = {"claim_id": f"C{n}", "institution_id": "K04", "patient": p, "claim_type": "outpatient",
                     "doctor_id": f"K04-D{start}", "event_time": f"2026-10-{day:02d}T09:{start + k:02d}:00+08:00",
                     "total_amount": 80.0}
                e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
                alerts += [a.to_dict() for a in rt.process(e, Source("zhijian.claims", 0, n, e["claim_id"]))]
    book = CaseBook()
    for a in alerts:
        book.add(a)
    assert sorted((c.entity_kind, c.entity_id, c.alerts) for c in book.cases.values()) == [
        ("group", "K04/K04-D0@2026-10-01", 1), ("group", "K04/K04-D30@2026-10-08", 1)]
    assert len(alerts) > 2  # re-sent as the groups came again, under their ids
