"""Labelled risk scenarios (风险场景) and their ground truth.

Each scenario is a kind of wrongdoing or failure a regulator names in the detection catalogue
(``../shared/brief/requirements.md``), at least one per rule or model family. The simulator
places its instances over the horizon (stratified in time, so a 30-day run sees them spread
out), and each instance, when its time comes, alters or adds events and records one
*incident*: scenario, entity, time window and the detectors expected to catch it. The
incidents go to :attr:`RegionTraffic.truth` — a file beside the events, never a topic.

Entities are what a regulator acts on: the prescriber for prescribing, the institution for
billing, the patient for card and drug misuse, the carrier for transport, the device for the
cold chain. Patient entities carry the raw identifier; the evaluator pseudonymizes it with the
worker's key before matching alerts.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from streams.lab.simulator import catalogue as cat
from streams.lab.simulator.coldchain import Fault
from streams.lab.simulator.traffic import RegionTraffic

DAY = 86400.0
HOUR = 3600.0


@dataclass(frozen=True)
class Scenario:
    name: str
    stream: str
    term: str  # the regulator's Chinese term
    entity_kind: str
    detectors: tuple[str, ...]
    per_30_days: float
    span_days: float  # how long an instance runs (placement keeps it inside the horizon)
    inject: Callable[[RegionTraffic, float, "Scenario"], None]
    description: str
    earliest_day: float = 0.0  # models judge an entity against its own history: give them some first
    at_start: bool = False  # one instance at the start of each horizon, running through it (a standing practice)
    #: placed and injected with a random source of its own: adding it changes nothing the others draw (a scenario
    #: drawing from the shared source at placement shifts every later draw, and the whole simulated world with it)
    own_random: bool = False
    #: other entity kinds its incidents name (a drug push is one incident for the institution whose drug enters
    #: the top list and one for the prescriber who enters the drug's prescriber list)
    also_entities: tuple[str, ...] = ()


def _work_hours(t: float, lo: float = 9.0, hi: float = 15.0, rng=None) -> float:
    """A time between ``lo`` and ``hi`` o'clock, on the day of ``t`` or the next: never before ``t``."""

    d = datetime.fromtimestamp(t, cat.TZ).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    at = d + (lo + (hi - lo) * (rng.random() if rng else 0.5)) * HOUR
    return at if at >= t else at + DAY


def _days_left(sim: RegionTraffic, t: float) -> float:
    """Days from ``t`` to the end of the horizon (of the current cycle, when scenarios repeat)."""
    horizon = sim.cfg.days * DAY
    cycle_end = sim.t0 + horizon * (1 + (t - sim.t0) // horizon)
    return (cycle_end - t) / DAY


def _clinic(sim: RegionTraffic, *kinds: str):
    return sim.rng_scenario.choice(sim.region.of_kind(*kinds))


def _prescriber(sim: RegionTraffic, inst, not_dept: str = "ER") -> str:
    r = sim.rng_scenario
    return r.choice([p for p, d in inst.prescriber_dept.items() if d != not_dept] or inst.prescribers)


def _patient(sim: RegionTraffic, chronic: bool = False):
    r = sim.rng_scenario
    pool = [p for p in sim.scenario_patients if p.conditions] if chronic else sim.scenario_patients
    while True:
        p = r.choice(pool)
        if p.id not in sim.stays:
            return p


# --- prescriptions 处方 ----------------------------------------------------------------------
def over_supply(sim, t, sc):
    r = sim.rng_scenario
    inst = _clinic(sim, "tertiary", "secondary", "community", "private_clinic")
    doc, patient = _prescriber(sim, inst), _patient(sim)
    t = _work_hours(t, rng=r)
    days = r.randint(14, 30)
    items = [sim.item(r.choice(cat.ACUTE), days)]
    rx = sim.prescription(t, inst, doc, patient, "outpatient", items, ["M54.5"])
    sim.record(sc.name, "prescriber", doc, t, t, sc.detectors, prescription_id=rx["prescription_id"],
               days_supply=days, limit_days=7)


def too_many_drugs(sim, t, sc):
    r = sim.rng_scenario
    inst = _clinic(sim, "secondary", "community", "private_clinic")
    doc, patient = _prescriber(sim, inst), _patient(sim)
    t = _work_hours(t, rng=r)
    pool = [d for d in cat.DRUGS if d.controlled == "none" and not d.key_monitored and d.code != "D-NIF30"
            and d.form != "injection"]
    drugs = r.sample(pool, r.randint(7, 9))
    rx = sim.prescription(t, inst, doc, patient, "outpatient", [sim.item(d, r.randint(3, 5)) for d in drugs],
                          ["J06.9", "M54.5"])
    sim.record(sc.name, "prescriber", doc, t, t, sc.detectors, prescription_id=rx["prescription_id"],
               drugs=len(drugs), limit=5)


def controlled_over_limit(sim, t, sc):
    r = sim.rng_scenario
    inst = _clinic(sim, "tertiary", "secondary")
    doc, patient = _prescriber(sim, inst), _patient(sim)
    t = _work_hours(t, rng=r)
    days = r.randint(5, 7)
    rx = sim.prescription(t, inst, doc, patient, "outpatient", [sim.item(cat.DRUG_BY_CODE["D-MOR10"], days)],
                          ["C34.9"])
    sim.record(sc.name, "prescriber", doc, t, t, sc.detectors, prescription_id=rx["prescription_id"],
               drug="morphine 10 mg", days_supply=days, limit_days=3)


def doctor_shopping(sim, t, sc):
    r = sim.rng_scenario
    patient = _patient(sim)
    hospitals = sim.region.of_kind("tertiary", "secondary", "community")
    sites = r.sample(hospitals, min(4, len(hospitals)))
    start = _work_hours(t, rng=r)
    at = start
    ids = []
    for inst in sites:
        rx = sim.prescription(at, inst, _prescriber(sim, inst), patient, "outpatient",
                              [sim.item(cat.DRUG_BY_CODE["D-MORCR30"], 7)], ["M54.5"])
        ids.append(rx["prescription_id"])
        at = _work_hours(at + r.uniform(1, 3) * DAY, rng=r)
    sim.record(sc.name, "patient", patient.id, start, at, sc.detectors, prescriptions=ids,
               prescribers=len(sites), institutions=len(sites))


def same_action_duplication(sim, t, sc):
    r = sim.rng_scenario
    inst = _clinic(sim, "community", "secondary")
    doc, patient = _prescriber(sim, inst), _patient(sim, chronic=True)
    t = _work_hours(t, rng=r)
    items = [sim.item(cat.DRUG_BY_CODE["D-AML5"], 28), sim.item(cat.DRUG_BY_CODE["D-NIF30"], 28)]
    rx = sim.prescription(t, inst, doc, patient, "long_term", items, ["I10"])
    sim.record(sc.name, "prescriber", doc, t, t, sc.detectors, prescription_id=rx["prescription_id"],
               atc_level4="C08CA")


def antimicrobial_ramp(sim, t, sc):
    inst = _clinic(sim, "tertiary", "secondary")
    doc = _prescriber(sim, inst)
    span = min(sc.span_days, max(4.0, _days_left(sim, t))) * DAY
    ramp = span * 2 / 3
    _boost_antimicrobials(sim, doc, lambda now, s=t, e=t + span: (
        1.0 if not s <= now < e else 1.0 + 2.0 * min(1.0, (now - s) / ramp)))
    sim.record(sc.name, "prescriber", doc, t, t + span, sc.detectors, ramp_to=3.0, ramp_days=round(ramp / DAY, 1),
               base_rate=round(sim.antimicrobial_rate[doc], 3))


def _multiply(hooks: dict[str, Any], key: str, factor) -> None:
    """Multiply what ``hooks[key]`` gives at a time by ``factor(t)``, on top of what other scenarios do to it (a
    prescriber's antimicrobial use, a site's waste)."""
    before = hooks.get(key)
    hooks[key] = factor if before is None else (lambda now: before(now) * factor(now))


def _boost_antimicrobials(sim, doc: str, factor) -> None:
    _multiply(sim.antimicrobial_boost, doc, factor)


def antimicrobial_overuse(sim, t, sc):
    """抗菌药物使用率超标: a hospital whose prescribers all write antimicrobials 2.5 times as often as the region's
    and give one to 85 % of its inpatients, from the start of the horizon to its end — its outpatient rate and
    inpatient use rate over the national targets every month (a standing practice: no prescriber's own chart
    sees a change)."""
    r = random.Random(f"antimicrobial-overuse-{sim.cfg.seed}-{int(t)}")
    end = t + _days_left(sim, t) * DAY
    inst = r.choice(sim.region.of_kind("tertiary", "secondary"))
    for doc in inst.prescribers:
        _boost_antimicrobials(sim, doc, lambda now, s=t, e=end: 2.5 if s <= now < e else 1.0)
    sim.inpatient_antimicrobial[inst.id] = 0.85
    sim.record(sc.name, "institution", inst.id, t, end, sc.detectors, outpatient_factor=2.5, inpatient_share=0.85)


def drug_push(sim, t, sc):
    """带金销售: from the start of a calendar month (not the run's first: the month before is the reference) to its
    end, one hospital prescriber writes a key-monitored injection into a third of their acute visits. At the month's
    close the drug enters the hospital's 双排名 top list and the prescriber its prescriber list."""
    r = random.Random(f"drug-push-{sim.cfg.seed}-{t}")  # its own: the world before it draws as it did
    inst = r.choice(sim.region.of_kind("tertiary", "secondary"))
    doc = r.choice([p for p, d in inst.prescriber_dept.items() if d not in ("ER",)] or inst.prescribers)
    drug = r.choice(cat.KEY_MONITORED)
    local = datetime.fromtimestamp(t, cat.TZ)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.timestamp() <= sim.t0 + DAY:  # the run's first month has no month before it
        start = (start + timedelta(days=32)).replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    sim.drug_push[doc] = (drug, start.timestamp(), end.timestamp(), 0.35, r)
    closed = end.timestamp() + 6 * HOUR  # the detector's grace
    for kind, entity in (("institution", inst.id), ("prescriber", doc)):
        sim.record(sc.name, kind, entity, start.timestamp(), closed, sc.detectors, drug=drug.code,
                   institution=inst.id, prescriber=doc, month=f"{start:%Y-%m}", share=0.35)


def drug_surge(sim, t, sc):
    """超常用药: one prescriber's use of one drug — a key-monitored injection at a hospital, or an ordinary drug at a
    hospital or community clinic — climbs over a week to a further 20–35 % of their visits (an ordinary drug
    35–50 %) and holds for a week; their colleagues go on as before."""
    r = random.Random(f"drug-surge-{sim.cfg.seed}-{t}")  # its own: the world before it draws as it did
    key = r.random() < 0.5
    inst = r.choice(sim.region.of_kind("tertiary", "secondary") if key else
                    sim.region.of_kind("tertiary", "secondary", "community"))
    busy = {doc for doc in sim.drug_extra} | set(sim.drug_push) | set(sim.antimicrobial_boost)
    # one surging prescriber per department: two of them on one drug are a department's rise (department_usage's)
    surging = {x["entity"]["id"] for x in sim.truth if x["scenario"] == sc.name}
    taken = {d for p, d in inst.prescriber_dept.items() if p in surging}
    doctors = [p for p, d in inst.prescriber_dept.items() if d != "ER" and p not in busy and d not in taken] or [
        p for p, d in inst.prescriber_dept.items() if d != "ER" and p not in busy] or inst.prescribers
    doc = r.choice(doctors)
    drug = r.choice(cat.KEY_MONITORED if key else [d for d in cat.ACUTE if not d.atc.startswith("J01")])
    # a key-monitored drug is rare, so a fifth to a third more of the visits is a many-fold rise; an ordinary one is
    # already on a sixth to a third of the prescriptions, so it takes more to double
    top = r.uniform(0.2, 0.35) if key else r.uniform(0.35, 0.5)
    span = min(sc.span_days, max(4.0, _days_left(sim, t))) * DAY
    ramp = span / 2
    sim.drug_extra.setdefault(doc, []).append(
        (drug, lambda now, s=t, e=t + span: top * min(1.0, (now - s) / ramp) if s <= now < e else 0.0, r, False))
    sim.record(sc.name, "prescriber", doc, t, t + span, sc.detectors, drug=drug.code, institution=inst.id,
               key_monitored=key, extra_share=round(top, 3), ramp_days=round(ramp / DAY, 1))
    if key:  # an injection at hundreds of yuan in a fifth of one prescriber's visits lifts the hospital's mean claim
        sim.record(sc.name, "institution", inst.id, t, t + span, sc.detectors, drug=drug.code, prescriber=doc,
                   key_monitored=key, extra_share=round(top, 3), ramp_days=round(ramp / DAY, 1))


def _quiet_departments(sim, names: tuple[str, ...] | None = None) -> list[tuple[Any, str]]:
    """(hospital, department) of the hospitals' departments (of ``names``; else every one but the emergency
    department) with three or more prescribers and none of them carrying a planted rise, hospital by hospital."""
    busy = {*sim.drug_extra, *sim.drug_push, *sim.antimicrobial_boost}
    return [(i, d) for i in sim.region.of_kind("tertiary", "secondary")
            for d in (names or sorted(set(i.prescriber_dept.values()) - {"ER"}))
            if sum(1 for x in i.prescriber_dept.values() if x == d) >= 3
            and not any(p in busy for p, x in i.prescriber_dept.items() if x == d)]


def department_push(sim, t, sc):
    """科室统一推药: a hospital department pushes a drug together (带金销售 arranged for the department, a 科室 target)
    — every one of its prescribers adds it to a further share of their acute visits, rising over four days and held
    to two weeks: a key-monitored injection (a further 8–15 %) or an ordinary drug (25–40 %). Each prescriber's own
    chart sees the department rise with them and excuses it; the department against the same department elsewhere
    does not. The push is on every visit, the chronic patients' refills too."""
    r = random.Random(f"department-push-{sim.cfg.seed}-{t}")  # its own: the world before it draws as it did
    units = _quiet_departments(sim)
    if not units:
        return
    inst, dept = r.choice(units)
    key = r.random() < 0.5
    drug = r.choice(cat.KEY_MONITORED if key else [d for d in cat.ACUTE if not d.atc.startswith("J01")])
    top = r.uniform(0.08, 0.15) if key else r.uniform(0.25, 0.4)
    span = min(sc.span_days, max(6.0, _days_left(sim, t))) * DAY
    ramp = 4 * DAY
    doctors = [p for p, d in inst.prescriber_dept.items() if d == dept]
    for doc in doctors:
        sim.drug_extra.setdefault(doc, []).append(
            (drug, lambda now, s=t, e=t + span: top * min(1.0, (now - s) / ramp) if s <= now < e else 0.0,
             random.Random(f"{doc}-push-{t}"), False))
    sim.record(sc.name, "department", f"{inst.id}/{dept}", t, t + span, sc.detectors, drug=drug.code,
               institution=inst.id, department=dept, prescribers=len(doctors), key_monitored=key,
               extra_share=round(top, 3))
    for doc in doctors:  # each of them pushes too: their own chart may see it past the department (not required)
        sim.record(sc.name, "prescriber", doc, t, t + span, ("prescription.drug_usage",), optional=True,
                   institution=inst.id, department=dept, drug=drug.code, key_monitored=key)


# --- insurance claims 医保结算 ------------------------------------------------------------------
def consumable_overuse(sim, t, sc):
    """高值医用耗材滥用: a hospital's cardiology or surgical ward bills its high-value consumable (a stent, a stapler)
    on a further 40–60 % of the stays that did not need it, rising over four days and held for 18 days (placed late,
    it is still running when the run ends: the chart needs a week of the ward's stays first)."""
    r = random.Random(f"consumable-overuse-{sim.cfg.seed}-{t}")  # its own: the world before it draws as it did
    units = [(i, w) for i in sim.region.of_kind("tertiary", "secondary") for w in sorted(cat.CONSUMABLE_USE)
             if w in i.departments and (i.id, w) not in sim.consumable_extra]
    if not units:
        return
    inst, ward = r.choice(units)
    code = r.choice([c for c, _ in cat.CONSUMABLE_USE[ward]])
    more, ramp = r.uniform(0.4, 0.6), 4 * DAY
    span = sc.span_days * DAY  # past the run's end when placed late: an incident running at the end
    sim.consumable_extra.setdefault((inst.id, ward), []).append(
        (code, lambda now, s=t, e=t + span: more * min(1.0, (now - s) / ramp) if s <= now < e else 0.0))
    sim.record(sc.name, "department", f"{inst.id}/{ward}", t, t + span, sc.detectors, institution=inst.id,
               department=ward, consumable=code, extra_share=round(more, 3))


def duplicate_charge(sim, t, sc):
    r = sim.rng_scenario
    inst = _clinic(sim, "tertiary", "secondary", "community")
    doc, patient = r.choice(inst.prescribers), _patient(sim)
    t = _work_hours(t, 9, 13, r)
    test = r.choice(("S-CBC", "S-CRP", "S-XRAY", "S-ECG"))
    first = sim.claim(t, inst, doc, patient, "outpatient", ["J06.9"],
                      [sim.service_line("S-CONSULT", 1), sim.service_line(test, 1)])
    again_t = t + r.uniform(1, 5) * HOUR
    again = sim.claim(again_t, inst, doc, patient, "outpatient", ["J06.9"], [sim.service_line(test, 1)])
    sim.record(sc.name, "institution", inst.id, t, again_t, sc.detectors, item_code=test,
               claims=[first["claim_id"], again["claim_id"]])


def unlikely_units(sim, t, sc):
    """A patient's physiotherapy or acupuncture billed at two clinics the same day, each under the daily cap, together
    well over it (跨机构超量)."""
    # a random source of its own: the scenarios before it draw exactly what they drew before it existed
    r = random.Random(f"unlikely-units-{sim.cfg.seed}-{t}")
    first, second = r.sample(sim.region.of_kind("community", "private_clinic"), 2)
    patient = r.choice([p for p in sim.scenario_patients if p.id not in sim.stays])
    code = r.choice(("S-PHYSIO", "S-ACU"))
    cap = cat.SERVICE_BY_CODE[code].max_per_day
    t = _work_hours(t, 8, 11, r)
    claims = []
    for n, inst in enumerate((first, second)):
        at = t + n * r.uniform(3, 5) * HOUR
        claims.append(sim.claim(at, inst, r.choice(inst.prescribers), patient, "outpatient", ["M54.5"],
                                [sim.service_line("S-CONSULT", 1), sim.service_line(code, cap)])["claim_id"])
    sim.record(sc.name, "institution", second.id, t, t + 10 * HOUR, sc.detectors, item_code=code, units=2 * cap,
               claims=claims)


def _reserve_patient(sim, r):
    """A reserve patient (normal traffic never visits them) who is not in hospital, drawn from ``r``."""
    return r.choice([p for p in sim.scenario_patients if p.id not in sim.stays])


def card_two_places(sim, t, sc):
    """One card settled at two institutions across the city minutes apart (冒名就医: a card lent or copied)."""
    r = random.Random(f"card-two-places-{sim.cfg.seed}-{t}")
    first, second = r.sample(sim.region.of_kind("community", "private_clinic", "pharmacy"), 2)
    while sim.region.gate_pharmacy.get(first.id) == second.id or sim.region.gate_pharmacy.get(second.id) == first.id:
        first, second = r.sample(sim.region.of_kind("community", "private_clinic", "pharmacy"), 2)
    patient = _reserve_patient(sim, r)
    t = _work_hours(t, 9, 16, r)
    gap = r.uniform(4, 20) * 60
    claims = []
    for inst, at in ((first, t), (second, t + gap)):
        if inst.kind == "pharmacy":
            claims.append(sim.pharmacy_claim(at, inst, patient, r.choice(inst.prescribers))["claim_id"])
        else:
            claims.append(sim.claim(at, inst, r.choice(inst.prescribers), patient, "outpatient", ["J06.9"],
                                    [sim.service_line("S-CONSULT", 1)])["claim_id"])
    sim.record(sc.name, "patient", patient.id, t, t + gap, sc.detectors, institutions=[first.id, second.id],
               minutes_apart=round(gap / 60, 1), claims=claims)


def _stay_claim(sim, inst, patient, admitted_t: float, nights: int, diagnosis: str) -> dict:
    """An inpatient claim billed at discharge, ``nights`` after ``admitted_t``, without the stay's other traffic."""
    from streams.lab.simulator.traffic import day_of

    out_t = admitted_t + nights * DAY
    lines = [sim.service_line("S-BED", nights), sim.service_line("S-NURSE1", nights),
             sim.service_line("S-CBC", 1, day_of(admitted_t))]
    return sim.claim(out_t, inst, inst.prescribers[0], patient, "inpatient", [diagnosis], lines,
                     admission_date=day_of(admitted_t), discharge_date=day_of(out_t))


def overlapping_stays(sim, t, sc):
    """A patient billed as an inpatient at two hospitals on the same nights (挂床 at one, or a card admitted twice)."""
    r = random.Random(f"overlapping-stays-{sim.cfg.seed}-{t}")
    first, second = r.sample(sim.region.of_kind("secondary", "community"), 2)
    patient = _reserve_patient(sim, r)
    t = _work_hours(t, 9, 15, r)
    nights = r.randint(6, 9)
    shared = r.randint(2, 4)
    a = _stay_claim(sim, first, patient, t, nights, "I63.9")
    b_in = t + (nights - shared) * DAY + r.uniform(-2, 2) * HOUR
    b = _stay_claim(sim, second, patient, b_in, r.randint(shared + 1, shared + 5), "J44.1")
    end = max(t + nights * DAY, b_in + (shared + 5) * DAY)
    sim.record(sc.name, "patient", patient.id, t, end, sc.detectors, institutions=[first.id, second.id],
               shared_nights=shared, claims=[a["claim_id"], b["claim_id"]])


def restricted_item(sim, t, sc):
    """Chemotherapy billed outside its payment restriction (限定支付范围): at a community clinic, or for a patient
    without a cancer diagnosis."""
    r = random.Random(f"restricted-item-{sim.cfg.seed}-{t}")
    patient = _reserve_patient(sim, r)
    t = _work_hours(t, 9, 15, r)
    if r.random() < 0.5:
        inst, diagnoses, failed = r.choice(sim.region.of_kind("community")), ["C50.9"], "levels"
    else:
        inst, diagnoses, failed = r.choice(sim.region.of_kind("secondary")), [r.choice(("M54.5", "K29.7"))], "diagnoses"
    claim = sim.claim(t, inst, r.choice(inst.prescribers), patient, "outpatient", diagnoses,
                      [sim.service_line("S-CONSULT", 1), sim.service_line("S-CHEMO", 1)])
    sim.record(sc.name, "institution", inst.id, t, t, sc.detectors, claim_id=claim["claim_id"], item_code="S-CHEMO",
               failed=failed)


def _together(sim, r, inst, doctor, people, at: float, lines) -> None:
    """``people`` settle at ``inst`` with ``doctor`` one after another from ``at``, a minute or three apart."""
    for p in people:
        sim.claim(at, inst, doctor, p, "outpatient", ["Z00.0"], lines())
        at += r.uniform(1, 3) * 60


def _group_days(sim, r, t: float, n: int, lo: float, hi: float) -> list[float]:
    """``n`` visit times from ``t``, ``lo``–``hi`` days apart, inside what is left of the horizon."""
    room = max(1.0, _days_left(sim, t) - 1)
    step = min(r.uniform(lo, hi), room / max(1, n - 1))
    return [_work_hours(t + k * step * DAY, 9, 11, r) for k in range(n)]


def group_visits(sim, t, sc):
    """Recruited patients (结伴就医): the same three to five people brought to one clinic together on three to five
    days, each time settling one after another for a "free check-up" billed to their cards."""
    from streams.lab.simulator.traffic import day_of

    r = random.Random(f"group-visits-{sim.cfg.seed}-{t}")
    inst = r.choice(sim.region.of_kind("private_clinic", "community"))
    people = r.sample([p for p in sim.scenario_patients if p.id not in sim.stays], r.randint(3, 5))
    days = _group_days(sim, r, t, r.randint(3, 5), 4, 12)
    doctor = r.choice(inst.prescribers)  # the doctor the recruiter brings them to

    def lines():
        return [sim.service_line("S-CONSULT", 1), sim.service_line("S-ECG", 1), sim.service_line("S-US-ABD", 1)]

    for at in days:
        sim._call(at, lambda now, _=None: _together(sim, r, inst, doctor, people, now, lines))
    sim.record(sc.name, "group", f"{inst.id}/{doctor}@{day_of(days[0])}", days[0], days[-1] + HOUR, sc.detectors,
               institution=inst.id, members=len(people), days=len(days))


def unbundling(sim, t, sc):
    r = sim.rng_scenario
    inst = _clinic(sim, "tertiary", "secondary")
    doc, patient = r.choice(inst.prescribers), _patient(sim)
    t = _work_hours(t, rng=r)
    package = cat.SERVICE_BY_CODE["S-LIVER"]
    lines = [sim.service_line("S-CONSULT", 1)] + [sim.service_line(c, 1) for c in package.components]
    claim = sim.claim(t, inst, doc, patient, "outpatient", ["K76.0"], lines)
    billed = sum(cat.SERVICE_BY_CODE[c].price for c in package.components)
    sim.record(sc.name, "institution", inst.id, t, t, sc.detectors, claim_id=claim["claim_id"],
               package="S-LIVER", package_price=package.price, billed=billed)


def over_standard_price(sim, t, sc):
    r = sim.rng_scenario
    inst = _clinic(sim, "secondary", "private_clinic", "community")
    doc, patient = r.choice(inst.prescribers), _patient(sim)
    t = _work_hours(t, rng=r)
    service = cat.SERVICE_BY_CODE[r.choice(("S-CT-HEAD", "S-US-ABD", "S-XRAY"))]
    price = round(service.price * r.uniform(1.3, 2.0), 2)
    claim = sim.claim(t, inst, doc, patient, "outpatient", ["R51"],
                      [sim.service_line("S-CONSULT", 1), sim.service_line(service.code, 1, price=price)])
    sim.record(sc.name, "institution", inst.id, t, t, sc.detectors, claim_id=claim["claim_id"],
               item_code=service.code, catalogue_price=service.price, billed_price=price)


def split_admission(sim, t, sc):
    r = sim.rng_scenario
    inst = _clinic(sim, "tertiary", "secondary")
    patient = _patient(sim)
    t = _work_hours(t, rng=r)
    stay = sim.admit(t, inst, 5, patient, "J18.9", "RESP")
    back = stay.discharge_t + r.uniform(2, 8) * DAY

    def readmit(now, _=None):
        if patient.id not in sim.stays:
            sim.admit(now, inst, 5, patient, "J18.9", "RESP")

    sim._call(back, readmit)
    sim.record(sc.name, "institution", inst.id, t, back + 5 * DAY, sc.detectors, patient_pseudonymized=True,
               gap_days=round((back - stay.discharge_t) / DAY, 1), limit_days=15)


def phantom_bed(sim, t, sc):
    r = sim.rng_scenario
    inst = _clinic(sim, "secondary", "community")
    patient = _patient(sim, chronic=True)
    t = _work_hours(t, rng=r)
    stay = sim.admit(t, inst, 9, patient, "I63.9", None)
    pharmacy = r.choice(sim.pharmacies)
    for d in (2, 5):
        sim.pharmacy_claim(_work_hours(t + d * DAY, 10, 18, r), pharmacy, patient, pharmacy.prescribers[0])
    sim.record(sc.name, "institution", inst.id, t, stay.discharge_t, sc.detectors, pharmacy=pharmacy.id,
               settlements_during_stay=2)


def card_skimming(sim, t, sc):
    r = sim.rng_scenario
    pharmacy = r.choice(sim.pharmacies)
    t = _work_hours(t, 19, 20.5, r)
    drugs = [cat.DRUG_BY_CODE["D-ATV20"], cat.DRUG_BY_CODE["D-OME20"]]
    at, cards = t, r.randint(15, 30)
    for patient in r.sample([p for p in sim.scenario_patients if p.id not in sim.stays], cards):
        sim.pharmacy_claim(at, pharmacy, patient, pharmacy.prescribers[-1], drugs)
        at += r.uniform(20, 70)
    sim.record(sc.name, "institution", pharmacy.id, t, at, sc.detectors, cards=cards,
               minutes=round((at - t) / 60, 1))


def impossible_day(sim, t, sc):
    r = sim.rng_scenario
    inst = _clinic(sim, "tertiary", "secondary")
    doc = r.choice(inst.prescribers)
    start = _work_hours(t, 8, 8, r)
    n = r.randint(28, 36)
    patients = r.sample([p for p in sim.scenario_patients if p.id not in sim.stays], n)
    for k, patient in enumerate(patients):
        at = start + k * (10 * HOUR / n)
        sim.claim(at, inst, doc, patient, "outpatient", ["M54.5"], [sim.service_line("S-PHYSIO", 2)])
    sim.record(sc.name, "doctor", doc, start, start + 10 * HOUR, sc.detectors, billed_hours=n, limit_hours=24)


def upcoding_profile(sim, t, sc):
    inst = _clinic(sim, "private_clinic", "community")
    span = min(sc.span_days, max(3.0, _days_left(sim, t))) * DAY
    sim.upcoding[inst.id] = lambda now, s=t, e=t + span: 0.7 if s <= now < e else 0.0
    sim.record(sc.name, "institution", inst.id, t, t + span, sc.detectors, share_of_visits_upcoded=0.7,
               added=["S-CT-HEAD", "S-US-ABD", "S-LIVER"])


def billing_after_death(sim, t, sc):
    r = sim.rng_scenario
    patient = r.choice(sim.deceased)
    t = _work_hours(t, rng=r)
    if r.random() < 0.5:
        inst = r.choice(sim.pharmacies)
        claim = sim.pharmacy_claim(t, inst, patient, inst.prescribers[0])
    else:
        inst = _clinic(sim, "community", "private_clinic")
        claim = sim.claim(t, inst, r.choice(inst.prescribers), patient, "outpatient", ["I10"],
                          [sim.service_line("S-CONSULT", 1, cat.day_of(t))])
    sim.record(sc.name, "institution", inst.id, t, t, sc.detectors, claim_id=claim["claim_id"],
               died=sim.death_date[patient.id])


def sex_age_conflict(sim, t, sc):
    r = sim.rng_scenario
    inst = _clinic(sim, "tertiary", "secondary")
    patient = _patient(sim)
    t = _work_hours(t, rng=r)
    diagnosis = "N83.2" if patient.sex == "M" else "N40.0"  # an ovarian cyst for a man, an enlarged prostate for a woman
    claim = sim.claim(t, inst, _prescriber(sim, inst), patient, "outpatient", [diagnosis],
                      [sim.service_line("S-CONSULT", 1, cat.day_of(t)), sim.service_line("S-US-ABD", 1, cat.day_of(t))])
    sim.record(sc.name, "institution", inst.id, t, t, sc.detectors, claim_id=claim["claim_id"],
               diagnosis=diagnosis, sex=patient.sex)


#: the fraud practices an institution may run for a whole horizon, by what it is (and their intensity ranges)
PRACTICES = {
    "phantom_visits": (0.12, 0.3),  # 虚构就诊: a share of real visits billed again a few days later, nobody came
    "upcoding": (0.12, 0.3),  # 过度检查: a share of visits billed a CT or an ultrasound on top
    "borrowed_physicians": (0.08, 0.2),  # 挂证: a share of visits billed under another institution's physician
    "long_stays": (1.25, 1.6),  # 挂床 / 延长住院: stays stretched by this factor
    "readmissions": (0.1, 0.25),  # a share of discharges brought back 16–28 days later (beyond the 15-day rule)
    "phantom_dispensing": (0.12, 0.3),  # 虚假购药: a share of dispensings billed again days later
}
FRAUD_SHARE = 0.25  # of the institutions of each kind


def fraudulent_institution(sim, t, sc):
    """Institutions of every kind and size run fraud practices from the start of the horizon to its end: no
    rule catches one claim of it, and the institution's own history holds nothing else — only a comparison
    with its peers (streams.workbench.risk) shows it."""
    r = random.Random(f"fraud-{sim.cfg.seed}-{int(t)}")  # its own generator: the honest traffic is unchanged
    end = t + _days_left(sim, t) * DAY
    for kind in ("tertiary", "secondary", "community", "private_clinic", "pharmacy"):
        insts = sim.region.of_kind(kind)
        for inst in r.sample(insts, max(1, round(len(insts) * FRAUD_SHARE))):
            if kind == "pharmacy":
                options = ["phantom_dispensing"]
            elif inst.beds:
                options = ["phantom_visits", "upcoding", "borrowed_physicians", "long_stays", "readmissions"]
            else:
                options = ["phantom_visits", "upcoding", "borrowed_physicians"]
            chosen = r.sample(options, min(len(options), 2 if len(options) > 1 else 1))
            practices = {p: round(r.uniform(*PRACTICES[p]), 3) for p in chosen}
            sim.fraud[inst.id] = (t, end, practices)
            sim.record(sc.name, "institution", inst.id, t, end, sc.detectors, kind=kind, practices=practices)


# --- medical waste 医疗废物 ---------------------------------------------------------------------
def _collection_evening(inst, t: float, sim=None) -> float:
    """20:00 on the first day from ``t`` on which ``inst`` weighs its waste (small sites: every other day; not on a
    day a look-alike's missed collection leaves without a manifest)."""

    at = _work_hours(t, 20, 20)
    factor = sim.waste_factor.get(inst.id) if sim is not None else None
    while ((inst.kind not in ("tertiary", "secondary") and datetime.fromtimestamp(at, cat.TZ).toordinal() % 2)
           or (factor is not None and factor(at) == 0)):
        at += DAY
    return at


def _extra_manifest(sim, t, sc, inst, category, fields=None, rng=None, **times):
    """One more manifest of ``inst``, weighed with its others on the first collection evening from
    ``t``, its later steps ``times`` after that (None: never). Returns (manifest id, weight, time)."""

    t = _collection_evening(inst, t, sim)
    sim.__dict__.setdefault("extra_waste_days", set()).add((inst.id, datetime.fromtimestamp(t, cat.TZ).toordinal()))
    r = rng or sim.rng_scenario
    # no heavier than the site's own manifests of the category that day (an extra 20 kg of sharps at a small
    # clinic, or at a hospital whose waste is leaking away, would be a shift in its waste mix of its own)
    factor = sim.waste_factor.get(inst.id)
    usual = sim.usual_waste_kg(inst, category) * (factor(t) if factor is not None else 1.0)
    weight = round(max(0.3, min(r.uniform(3, 25), usual)), 1)
    n = sum(1 for x in sim.truth if x["scenario"] == sc.name)
    mid = f"MF-{inst.id}-{datetime.fromtimestamp(t, cat.TZ):%Y%m%d}-{category[:3].upper()}-S{n + 1}"

    def hook(m, now):
        if m.get("_scenario") is None and now == t and m["institution"] is inst and m["category"] == category:
            return {**m, "manifest_id": mid, "weight": weight, "received_weight": weight, "_scenario": sc.name,
                    **(fields or {}), **{k: (now + v if v is not None else None) for k, v in times.items()}}
        return None

    sim.manifest_hooks.insert(0, hook)  # first: other scenarios' hooks then see this manifest as it is
    sim.manifest(t, inst, category, weight)
    sim.manifest_hooks.remove(hook)
    return mid, weight, t


def storage_overdue(sim, t, sc):
    r = sim.rng_scenario
    inst = _clinic(sim, "tertiary", "secondary", "community", "private_clinic")
    held = r.uniform(55, 80) * HOUR
    mid, w, t = _extra_manifest(sim, t, sc, inst, "infectious", handed=held, received=held + 2 * HOUR,
                                disposed=held + 8 * HOUR)
    sim.record(sc.name, "institution", inst.id, t, t + held, sc.detectors, manifest_id=mid,
               stored_hours=round(held / HOUR, 1), limit_hours=48)


def manifest_not_closed(sim, t, sc):
    r = sim.rng_scenario
    inst = _clinic(sim, "tertiary", "secondary", "community")
    handed = r.uniform(11, 15) * HOUR
    mid, w, t = _extra_manifest(sim, t, sc, inst, "sharps", handed=handed, received=None, disposed=None)
    sim.record(sc.name, "carrier", sim.carrier_of[inst.id], t + handed, t + handed + 48 * HOUR, sc.detectors,
               manifest_id=mid, institution=inst.id, transport_window_hours=24)


def category_mismatch(sim, t, sc):
    r = sim.rng_scenario
    inst = _clinic(sim, "tertiary", "secondary")
    handed = r.uniform(11, 15) * HOUR
    category = r.choice(("pathological", "chemical"))
    mid, w, t = _extra_manifest(sim, t, sc, inst, category, {"facility": "FAC-2"}, handed=handed,
                                received=handed + 2 * HOUR, disposed=handed + 8 * HOUR)
    sim.record(sc.name, "facility", "FAC-2", t + handed, t + handed + 2 * HOUR, sc.detectors, manifest_id=mid,
               category=category, licensed=list(sim.region.facilities["FAC-2"]))


def unlicensed_carrier(sim, t, sc):
    """非法转运: a clinic hands a manifest of infectious waste to a haulier with no transport licence for medical
    waste (not on the carriers' licence table)."""
    r = random.Random(f"unlicensed-carrier-{sim.cfg.seed}-{t}")  # its own: the world before it draws as it did
    inst = r.choice(sim.region.of_kind("community", "private_clinic"))
    carrier = f"CR-X{r.randint(1, 9)}"
    handed = r.uniform(11, 15) * HOUR
    mid, w, t = _extra_manifest(sim, t, sc, inst, "infectious", {"carrier": carrier}, rng=r, handed=handed,
                                received=handed + 2 * HOUR, disposed=handed + 8 * HOUR)
    sim.record(sc.name, "carrier", carrier, t + handed, t + handed + 2 * HOUR, sc.detectors, manifest_id=mid,
               institution=inst.id)


def weight_loss_in_transit(sim, t, sc):
    r = sim.rng_scenario
    carrier = r.choice(sim.region.carriers)
    end = t + sc.span_days * DAY
    loss = r.uniform(0.13, 0.17)

    def lose(m, now):
        if m["carrier"] == carrier and t <= now < end and m.get("received") is not None:
            return {**m, "received_weight": round(m["weight"] * (1 - loss), 1)}
        return None

    sim.manifest_hooks.append(lose)
    sim.record(sc.name, "carrier", carrier, t, end + DAY, sc.detectors, weight_lost=round(loss, 3), threshold=0.10)


def generation_drop(sim, t, sc):
    drawn = _clinic(sim, "tertiary", "secondary")  # the draw of before, so the scenarios after it draw as they did
    span = min(sc.span_days, max(3.0, _days_left(sim, t))) * DAY
    inst = _waste_site(sim, random.Random(f"generation-drop-{sim.cfg.seed}-{t}"), t, t + span, "tertiary",
                       "secondary", prefer=drawn)
    if inst is None:
        return
    _scale_waste(sim, inst, lambda now, s=t, e=t + span: 0.4 if s <= now < e else 1.0)
    sim.record(sc.name, "institution", inst.id, t, t + span, sc.detectors, factor=0.4)


#: days kept between two changes to one site's waste, so each is one episode of its own and the charts relearn
WASTE_GAP_DAYS = 7


def _waste_site(sim, r, start: float, end: float, *kinds: str, prefer=None, no_extra: bool = False):
    """A site of ``kinds`` whose waste no other scenario or look-alike changes from a week before ``start`` to a week
    after ``end`` (``prefer`` when it is free), booked for that time; None when every site is busy (a small region).
    With ``no_extra``, not a site with a scenario's extra manifest in that time (a missed collection has none)."""
    busy = sim.__dict__.setdefault("waste_busy", {})
    gap = WASTE_GAP_DAYS * DAY
    days = range(datetime.fromtimestamp(start, cat.TZ).toordinal(), datetime.fromtimestamp(end, cat.TZ).toordinal() + 1)
    extra = sim.__dict__.get("extra_waste_days", set())

    def free(inst) -> bool:
        return (all(end + gap <= s or e + gap <= start for s, e in busy.get(inst.id, ()))
                and not (no_extra and any((inst.id, d) in extra for d in days)))

    sites = [i for i in sim.region.of_kind(*kinds) if free(i)]
    if not sites:
        return None
    inst = prefer if prefer in sites else r.choice(sites)
    busy.setdefault(inst.id, []).append((start, end))
    return inst


def _scale_waste(sim, inst, factor) -> None:
    _multiply(sim.waste_factor, inst.id, factor)


def _shift_waste_mix(sim, inst, factors) -> None:
    """Multiply a site's waste categories by ``factors(t)`` (category → factor), on top of other scenarios'."""
    before = sim.waste_mix.get(inst.id)
    sim.waste_mix[inst.id] = factors if before is None else (lambda now: {**before(now), **factors(now)})


def under_declared_site(sim, t, sc):
    """长期少报医废: a secondary hospital or community clinic that has always declared only 30–45 % of its medical waste
    (the rest sold or dumped) — no change against its own history, far below its peers per bed."""
    r = random.Random(f"under-declared-site-{sim.cfg.seed}-{int(t)}")
    end = t + _days_left(sim, t) * DAY
    # a kind with peers to be judged against (a simulated region has two tertiary hospitals; a real one more)
    kinds = [k for k in ("secondary", "community") if len(sim.region.of_kind(k)) >= 3] or [
        max(("secondary", "community"), key=lambda k: len(sim.region.of_kind(k)))]  # too small a region to judge
    inst = _waste_site(sim, r, t, end, r.choice(kinds))
    if inst is None:
        return
    declared = r.uniform(0.3, 0.45)
    _scale_waste(sim, inst, lambda now, s=t, e=end: declared if s <= now < e else 1.0)
    sim.record(sc.name, "institution", inst.id, t, end, sc.detectors, declared=round(declared, 2), beds=inst.beds)


def infectious_waste_sold(sim, t, sc):
    """医废分类流失: a hospital sells its infusion sets and other plastic infectious waste to a recycler — the
    infectious category it declares falls to 30–50 % while the others go on, for ten days."""
    r = random.Random(f"infectious-waste-sold-{sim.cfg.seed}-{t}")  # its own: the world before it draws as it did
    keep = r.uniform(0.3, 0.5)
    span = min(sc.span_days, max(3.0, _days_left(sim, t))) * DAY
    inst = _waste_site(sim, r, t, t + span, "tertiary", "secondary", "community")
    if inst is None:
        return
    _shift_waste_mix(sim, inst, lambda now, s=t, e=t + span: {"infectious": keep} if s <= now < e else {})
    sim.record(sc.name, "institution", inst.id, t, t + span, sc.detectors, infectious_kept=round(keep, 2))


# --- vaccine cold chain 疫苗冷链 ----------------------------------------------------------------
def _device(sim, kinds=("fridge", "cold_room")):
    r = sim.rng_scenario
    busy = {x["entity"]["id"] for x in sim.truth if x["entity"]["kind"] == "device" and x["end_t"] > sim.now - DAY}
    choices = [d for d in sim.region.devices if d.kind in kinds and d.id not in busy]
    return r.choice(choices or [d for d in sim.region.devices if d.kind in kinds])


def power_loss(sim, t, sc):
    r = sim.rng_scenario
    d = _device(sim)
    hours = r.uniform(3, 14)
    sim.units[d.id].fault = Fault("power_loss", t, t + hours * HOUR)
    sim.record(sc.name, "device", d.id, t, t + (hours + 1) * HOUR, sc.detectors, hours=round(hours, 1))


def thermostat_freeze(sim, t, sc):
    r = sim.rng_scenario
    d = _device(sim)
    hours, target = r.uniform(2, 6), r.uniform(-4, -2)
    sim.units[d.id].fault = Fault("freeze", t, t + hours * HOUR, target_c=target)
    sim.record(sc.name, "device", d.id, t, t + (hours + 1) * HOUR, sc.detectors, hours=round(hours, 1),
               target_c=round(target, 1))


def sensor_silent(sim, t, sc):
    r = sim.rng_scenario
    d = _device(sim)
    hours = r.uniform(1, 8)
    sim.silent[d.id] = (t, t + hours * HOUR)
    sim.record(sc.name, "device", d.id, t, t + hours * HOUR, sc.detectors, hours=round(hours, 1),
               limit_minutes=30)


def warming_drift(sim, t, sc):
    r = sim.rng_scenario
    d = _device(sim, ("fridge",))
    unit = sim.units[d.id]
    span = min(sc.span_days, max(2.0, _days_left(sim, t) - 1)) * DAY
    rate = 1.5 / (span / DAY)  # +1.5 °C by the time the compressor gives out
    unit.fault = Fault("drift", t, t + span, drift_c_per_day=rate)
    repair = r.uniform(4, 8) * HOUR

    def fail(now, _=None):
        unit.fault = Fault("compressor_failure", now, now + repair)
        unit.drift_c = 0.0

    sim._call(t + span, fail)
    sim.record(sc.name, "device", d.id, t, t + span + repair, sc.detectors, drift_c_per_day=round(rate, 3),
               failure_after_days=round(span / DAY, 1))


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("over_supply", "prescription", "超量开药", "prescriber", ("prescription.over_supply",), 12, 0,
             over_supply, "outpatient prescription of 14–30 days' supply (limit 7)"),
    Scenario("too_many_drugs", "prescription", "大处方", "prescriber", ("prescription.too_many_drugs",), 8, 0,
             too_many_drugs, "7–9 drugs on one prescription (limit 5)"),
    Scenario("controlled_over_limit", "prescription", "麻醉药品超量", "prescriber",
             ("prescription.controlled_drugs",), 6, 0, controlled_over_limit,
             "immediate-release morphine for 5–7 days (limit 3)"),
    Scenario("doctor_shopping", "prescription", "重复开药", "patient", ("prescription.duplicate_overlap",), 3, 10,
             doctor_shopping, "one patient, controlled-release morphine from 4 prescribers at 4 institutions, "
             "overlapping supply"),
    Scenario("same_action_duplication", "prescription", "同类药物重复", "prescriber", ("prescription.same_action",),
             6, 0, same_action_duplication, "amlodipine and nifedipine (ATC C08CA) on one prescription"),
    Scenario("antimicrobial_ramp", "prescription", "抗菌药物超常", "prescriber", ("prescription.excess_usage",), 2,
             21, antimicrobial_ramp, "a prescriber's antimicrobial use ramps to 3× over two weeks, then holds", earliest_day=7),
    Scenario("duplicate_charge", "claim", "重复收费", "institution", ("claim.duplicate_charge",), 12, 0,
             duplicate_charge, "the same test billed again to the same patient the same day"),
    Scenario("unbundling", "claim", "分解项目收费", "institution", ("claim.unbundling",), 10, 0, unbundling,
             "liver panel billed as its four components"),
    Scenario("over_standard_price", "claim", "超标准收费", "institution", ("claim.over_standard",), 8, 0,
             over_standard_price, "an imaging item billed at 1.3–2× the catalogue price"),
    Scenario("split_admission", "claim", "分解住院", "institution", ("claim.split_admission",), 6, 20,
             split_admission, "pneumonia patient readmitted 2–8 days after discharge, not a planned cycle"),
    Scenario("phantom_bed", "claim", "挂床住院", "institution", ("claim.phantom_bed",), 4, 9, phantom_bed,
             "an inpatient settles at a pharmacy twice during the stay"),
    Scenario("card_skimming", "claim", "套刷社保卡", "institution", ("claim.card_misuse",), 4, 0, card_skimming,
             "15–30 different cards settle the same drugs at one pharmacy within minutes"),
    Scenario("impossible_day", "claim", "超时计费", "doctor", ("claim.impossible_day",), 3, 0, impossible_day,
             "a doctor bills 28–36 hours of physiotherapy in one day"),
    Scenario("upcoding_profile", "claim", "机构画像异常", "institution", ("claim.entity_anomaly",), 1, 14,
             upcoding_profile, "a clinic adds CT, ultrasound and a liver panel to 70 % of visits for two weeks", earliest_day=7),
    Scenario("storage_overdue", "waste", "超时贮存", "institution", ("waste.storage_overdue",), 8, 4,
             storage_overdue, "a manifest handed over 55–80 h after generation (limit 48)"),
    Scenario("manifest_not_closed", "waste", "联单未闭环", "carrier", ("waste.manifest_not_closed",), 6, 3,
             manifest_not_closed, "handed over to the carrier, never received"),
    Scenario("category_mismatch", "waste", "超范围处置", "facility", ("waste.category_mismatch",), 4, 1,
             category_mismatch, "pathological or chemical waste sent to a facility licensed only for "
             "infectious and sharps"),
    Scenario("drug_push", "prescription", "带金销售(双排名)", "prescriber",
             ("prescription.double_ranking", "prescription.drug_usage", "claim.entity_anomaly"), 1, 31,
             drug_push, "a hospital prescriber writes a key-monitored injection into a third of their visits for a "
             "calendar month", own_random=True, also_entities=("institution",)),
    Scenario("department_push", "prescription", "科室超常(统一推药)", "department",
             ("prescription.department_usage",), 1, 14, department_push,
             "every prescriber of a hospital department adds one drug to a further share of their visits, over four "
             "days, for two weeks", earliest_day=14, own_random=True, also_entities=("prescriber",)),
    Scenario("consumable_overuse", "claim", "高值医用耗材滥用", "department", ("claim.consumable_usage",), 1, 18,
             consumable_overuse, "a hospital's cardiology or surgical ward bills its high-value consumable on a "
             "further 40–60 % of its stays, rising over four days, for 18 days", earliest_day=12,
             own_random=True),
    Scenario("unlicensed_carrier", "waste", "非法转运", "carrier", ("waste.category_mismatch",), 3, 1,
             unlicensed_carrier, "a clinic's infectious waste handed to a haulier with no transport licence",
             own_random=True),
    Scenario("weight_loss_in_transit", "waste", "转运重量差异", "carrier", ("waste.weight_discrepancy",), 2, 3,
             weight_loss_in_transit, "a carrier delivers 13–17 % less weight than it collected, for the manifests "
             "of three days"),
    Scenario("generation_drop", "waste", "医废产生量异常", "institution",
             ("waste.generation_anomaly", "waste.generation_per_bed"), 1, 10,
             generation_drop, "a hospital's waste falls to 40 % of normal (leaking out of the system)", earliest_day=7),
    Scenario("power_loss", "telemetry", "断电", "device",
             ("coldchain.excursion", "coldchain.breach", "coldchain.abnormal_dynamics", "coldchain.device_status"), 4,
             1, power_loss,
             "a fridge or cold room without power for 3–14 h"),
    Scenario("thermostat_freeze", "telemetry", "冻结", "device",
             ("coldchain.excursion", "coldchain.breach", "coldchain.abnormal_dynamics"), 3, 1,
             thermostat_freeze, "a thermostat fault pulls the contents to −2…−4 °C for 2–6 h"),
    Scenario("sensor_silent", "telemetry", "传感器离线", "device", ("coldchain.sensor_silent",), 4, 1,
             sensor_silent, "a logger sends nothing for 1–8 h"),
    Scenario("warming_drift", "telemetry", "缓慢升温", "device", ("coldchain.abnormal_dynamics", "coldchain.excursion"), 1, 7,
             warming_drift, "a fridge warms by 1.5 °C over about a week, then its compressor fails", earliest_day=7),
)
SCENARIOS += (  # placed after the others, so adding them moved none of the earlier placements
    Scenario("fraudulent_institution", "claim", "欺诈骗保机构", "institution", ("institution.risk",), 1, 30,
             fraudulent_institution, "a quarter of the institutions of every kind and size run two fraud practices "
             "all along (phantom visits or dispensings, upcoding, borrowed physicians, long stays, readmissions)",
             at_start=True),
    Scenario("billing_after_death", "claim", "死亡后结算", "institution", ("claim.after_death",), 4, 0,
             billing_after_death, "a pharmacy or clinic settles a claim for a patient who died 10–400 days before"),
    Scenario("sex_age_conflict", "claim", "限性别诊疗", "institution", ("claim.sex_age_conflict",), 4, 0,
             sex_age_conflict, "a hospital bills a female diagnosis for a man, or a male one for a woman"),
    Scenario("unlikely_units", "claim", "跨机构超量收费", "institution", ("claim.unlikely_units",), 8, 0, unlikely_units,
             "a daily-capped therapy billed at the cap at two clinics the same day", own_random=True),
    Scenario("card_two_places", "claim", "冒名就医", "patient", ("claim.two_places",), 6, 0, card_two_places,
             "one card settles at two clinics or pharmacies across the city 4–20 minutes apart", own_random=True),
    Scenario("overlapping_stays", "claim", "住院时间重叠", "patient", ("claim.two_places",), 3, 14, overlapping_stays,
             "one patient billed as an inpatient at two hospitals sharing 2–4 nights", own_random=True),
    Scenario("restricted_item", "claim", "超限定支付范围", "institution", ("claim.payment_restriction",), 6, 0,
             restricted_item, "chemotherapy billed at a community clinic, or without a cancer diagnosis",
             own_random=True),
    Scenario("group_visits", "claim", "结伴就医", "group", ("claim.group_visits",), 3, 30, group_visits,
             "the same 3–5 people settle together at one clinic on 3–5 days, 4–12 days apart", own_random=True),
    Scenario("drug_surge", "prescription", "超常用药", "prescriber", ("prescription.drug_usage", "claim.entity_anomaly"),
             3, 14, drug_surge, "a prescriber's use of one drug (half the time a key-monitored injection) climbs over a "
             "week to a further 20–35 % of their visits (an ordinary drug 35–50 %) and holds for a week; a key-monitored "
             "one is an incident of the hospital's too (its mean claim)", earliest_day=10, own_random=True,
             also_entities=("institution",)),
    Scenario("antimicrobial_overuse", "claim", "抗菌药物使用率超标", "institution",
             ("claim.antimicrobial_stewardship",), 1, 0, antimicrobial_overuse,
             "a hospital's prescribers write antimicrobials 2.5 times as often as the region's and give one to 85 % "
             "of its inpatients, all along: judged when each month closes", at_start=True, own_random=True),
    Scenario("under_declared_site", "waste", "长期少报医废", "institution", ("waste.generation_per_bed",), 1, 0,
             under_declared_site, "a secondary hospital or community clinic declares 30–45 % of its waste all "
             "along: found against its peers per bed", at_start=True, own_random=True),
    Scenario("infectious_waste_sold", "waste", "医废分类构成异常(流失)", "institution",
             ("waste.category_mix", "waste.generation_anomaly", "waste.generation_per_bed"), 1, 10,
             infectious_waste_sold,
             "a hospital or clinic declares 30–50 % of its infectious waste for ten days, the other categories as "
             "before (plastics sold to a recycler)", earliest_day=10, own_random=True),
)
BY_NAME = {s.name: s for s in SCENARIOS}


# --- benign look-alikes 合理情形: what raises an alert but an analyst justifies ----------------------
# Off by default (evaluate and the demo score the rules on the scenarios above); SimulationConfig.look_alikes
# plants them for the triage simulation, where a priority learned from verdicts must tell them apart. Three
# times as many as the frauds they resemble: most of what a rule flags, an analyst justifies.
def justified_long_prescription(sim, t, sc):
    """A chronic patient about to travel gets two to four weeks of their usual maintenance drug: over the
    outpatient limit, and justified (长期处方 without the paperwork)."""
    r = sim.rng_scenario
    inst = _clinic(sim, "community", "secondary")
    doc, patient = _prescriber(sim, inst), _patient(sim, chronic=True)
    t = _work_hours(t, rng=r)
    condition = r.choice([c for c in patient.conditions if cat.CHRONIC.get(c)] or list(cat.CHRONIC))
    days = r.choice((14, 21, 28))
    rx = sim.prescription(t, inst, doc, patient, "outpatient", [sim.item(r.choice(cat.CHRONIC[condition]), days)],
                          ["Z76.0"])
    sim.record(sc.name, "prescriber", doc, t, t, sc.detectors, benign=True, prescription_id=rx["prescription_id"],
               days_supply=days)


def elderly_polypharmacy(sim, t, sc):
    """An elderly patient's repeat prescription of the maintenance drugs of several chronic conditions: more
    than five drugs, each indicated."""
    r = sim.rng_scenario
    inst = _clinic(sim, "community", "secondary")
    doc, patient = _prescriber(sim, inst), _patient(sim, chronic=True)
    t = _work_hours(t, rng=r)
    pool = [d for drugs in cat.CHRONIC.values() for d in drugs]
    drugs = r.sample(pool, min(len(pool), r.randint(6, 7)))
    rx = sim.prescription(t, inst, doc, patient, "outpatient", [sim.item(d, 7) for d in drugs], ["I10", "E11.9"])
    sim.record(sc.name, "prescriber", doc, t, t, sc.detectors, benign=True, prescription_id=rx["prescription_id"],
               drugs=len(drugs))


def defrost_cycle(sim, t, sc):
    """A fridge's defrost heater runs long: the probe passes +8 °C for a quarter of an hour and the unit pulls
    back — an excursion the operator checks and closes as justified (no vaccine at risk)."""
    r = sim.rng_scenario
    d = _device(sim, ("fridge",))
    minutes = r.uniform(25, 35)
    sim.units[d.id].fault = Fault("defrost", t, t + minutes * 60, target_c=r.uniform(13.0, 15.0))
    sim.record(sc.name, "device", d.id, t, t + 2 * HOUR, sc.detectors, benign=True, minutes=round(minutes))


def split_therapy(sim, t, sc):
    """A patient's physiotherapy split between two clinics the same day, within the daily cap together (a session
    at a community clinic, the rest at a private one): two claims, nothing beyond what is possible."""
    r = sim.rng_scenario
    first, second = r.sample(sim.region.of_kind("community", "private_clinic"), 2)
    patient = _patient(sim)
    cap = cat.SERVICE_BY_CODE["S-PHYSIO"].max_per_day
    t = _work_hours(t, 8, 11, r)
    a = r.randint(1, cap - 1)
    for inst, units, at in ((first, a, t), (second, cap - a, t + r.uniform(3, 5) * HOUR)):
        sim.claim(at, inst, r.choice(inst.prescribers), patient, "outpatient", ["M54.5"],
                  [sim.service_line("S-CONSULT", 1), sim.service_line("S-PHYSIO", units)])
    sim.record(sc.name, "institution", second.id, t, t + 10 * HOUR, sc.detectors, benign=True, units=cap)


def new_setpoint(sim, t, sc):
    """After maintenance a fridge is set 0.8–1.2 °C colder and stays there: the dynamics rule may say so once
    (an operator confirms the service), and then learns it as the unit's normal."""
    r = sim.rng_scenario
    d = _device(sim, ("fridge",))
    d.setpoint = round(d.setpoint - r.uniform(0.8, 1.2), 2)
    sim.record(sc.name, "device", d.id, t, t + 3 * DAY, sc.detectors, benign=True, setpoint=d.setpoint)


def pharmacy_at_the_gate(sim, t, sc):
    """A patient sees a doctor at a hospital and fills the prescription at the pharmacy at its gate minutes later
    (处方外配): two institutions, a few minutes apart, a few minutes' walk."""
    r = random.Random(f"pharmacy-at-the-gate-{sim.cfg.seed}-{t}")
    pairs = [(h, p) for h, p in sim.region.gate_pharmacy.items()]
    hospital_id, pharmacy_id = r.choice(pairs)
    hospital, pharmacy = sim.region.by_id[hospital_id], sim.region.by_id[pharmacy_id]
    patient = _reserve_patient(sim, r)
    t = _work_hours(t, 9, 15, r)
    gap = r.uniform(6, 25) * 60
    sim.claim(t, hospital, r.choice(hospital.prescribers), patient, "outpatient", ["J06.9"],
              [sim.service_line("S-CONSULT", 1)])
    sim.pharmacy_claim(t + gap, pharmacy, patient, r.choice(pharmacy.prescribers))
    sim.record(sc.name, "patient", patient.id, t, t + gap, sc.detectors, benign=True,
               institutions=[hospital.id, pharmacy.id], minutes_apart=round(gap / 60, 1))


def hospital_transfer(sim, t, sc):
    """A patient discharged from one hospital and admitted at another the same day (转院): two stays, no shared
    night."""
    r = random.Random(f"hospital-transfer-{sim.cfg.seed}-{t}")
    first, second = r.sample(sim.region.of_kind("secondary", "community", "tertiary"), 2)
    patient = _reserve_patient(sim, r)
    t = _work_hours(t, 9, 12, r)
    nights = r.randint(3, 7)
    _stay_claim(sim, first, patient, t, nights, "I63.9")
    _stay_claim(sim, second, patient, t + nights * DAY + r.uniform(1, 4) * HOUR, r.randint(5, 12), "I63.9")
    sim.record(sc.name, "patient", patient.id, t, t + (nights + 12) * DAY, sc.detectors, benign=True,
               institutions=[first.id, second.id])


def chemotherapy_day_case(sim, t, sc):
    """An outpatient chemotherapy day case at a tertiary hospital coded as the treatment (Z51.1) with the cancer as
    the second diagnosis: within the restriction (one listed diagnosis anywhere on the claim)."""
    r = random.Random(f"chemotherapy-day-case-{sim.cfg.seed}-{t}")
    inst = r.choice(sim.region.of_kind("tertiary"))
    patient = _reserve_patient(sim, r)
    t = _work_hours(t, 9, 15, r)
    sim.claim(t, inst, r.choice(inst.prescribers), patient, "outpatient", ["Z51.1", r.choice(("C50.9", "C34.9"))],
              [sim.service_line("S-CONSULT", 1), sim.service_line("S-CHEMO", 1)])
    sim.record(sc.name, "institution", inst.id, t, t, sc.detectors, benign=True)


def couple_follow_ups(sim, t, sc):
    """An elderly couple's weekly follow-ups at their community clinic, always together, their daughter with them
    on two of the days: two people every week, three on two days — not a group."""
    from streams.lab.simulator.traffic import day_of

    r = random.Random(f"couple-follow-ups-{sim.cfg.seed}-{t}")
    inst = r.choice(sim.region.of_kind("community"))
    couple = r.sample([p for p in sim.scenario_patients if p.id not in sim.stays], 3)
    daughter, couple = couple[2], couple[:2]
    days = _group_days(sim, r, t, r.randint(4, 6), 6, 8)
    with_her = set(r.sample(range(len(days)), 2))
    doctor = r.choice(inst.prescribers)  # their family doctor

    def lines():
        return [sim.service_line("S-CONSULT", 1), sim.service_line("S-GLU", 1)]

    for k, at in enumerate(days):
        people = couple + ([daughter] if k in with_her else [])
        sim._call(at, lambda now, people=people: _together(sim, r, inst, doctor, people, now, lines))
    sim.record(sc.name, "group", f"{inst.id}/{doctor}@{day_of(days[0])}", days[0], days[-1] + HOUR, sc.detectors,
               benign=True, institution=inst.id)


def busy_emergency(sim, t, sc):
    """急诊抗菌药物(合理): a hospital's emergency department gives antimicrobials 1.8 times as often as the region's
    all along — a quarter to a third of its visits: over the outpatient target, within the emergency one (40 %)."""
    r = random.Random(f"busy-emergency-{sim.cfg.seed}-{int(t)}")
    end = t + _days_left(sim, t) * DAY
    inst = r.choice(sim.region.of_kind("tertiary", "secondary"))
    for doc in [p for p, d in inst.prescriber_dept.items() if d == "ER"]:
        _boost_antimicrobials(sim, doc, lambda now, s=t, e=end: 1.8 if s <= now < e else 1.0)
    sim.record(sc.name, "institution", inst.id, t, end, sc.detectors, benign=True, emergency_factor=1.8)


def seasonal_outbreak(sim, t, sc):
    """季节性流行: an influenza season across the region — in one department code (internal medicine, paediatrics or
    respiratory), every hospital's prescribers add the same symptomatic drug to a further 20–30 % of their acute
    visits for two weeks, each hospital a little more or less (×0.8–1.2). Departments of fewer than three prescribers
    (nobody to compare a prescriber with) and departments with a planted rise stay out."""
    r = random.Random(f"seasonal-outbreak-{sim.cfg.seed}-{t}")
    units = _quiet_departments(sim, ("IM", "PED", "RESP"))
    if not units:
        return
    dept = r.choice(sorted({d for _, d in units}))
    drug = r.choice([d for d in cat.ACUTE if d.code in ("D-PCM500", "D-NAC200", "D-IBU200", "D-LOR10")])
    more, span = r.uniform(0.2, 0.3), 14 * DAY
    for inst in [i for i, d in units if d == dept]:
        local = more * r.uniform(0.8, 1.2)
        doctors = [p for p, d in inst.prescriber_dept.items() if d == dept]
        for doc in doctors:
            sim.drug_extra.setdefault(doc, []).append(
                (drug, lambda now, s=t, e=t + span, m=local: m if s <= now < e else 0.0, random.Random(f"{doc}-{t}"),
                 True))
        for doc in doctors:
            sim.record(sc.name, "prescriber", doc, t, t + span, sc.detectors, benign=True, institution=inst.id,
                       department=dept, drug=drug.code, extra_share=round(local, 3))
        sim.record(sc.name, "department", f"{inst.id}/{dept}", t, t + span, sc.detectors, benign=True,
                   institution=inst.id, department=dept, drug=drug.code, extra_share=round(local, 3))


def consumable_price_cut(sim, t, sc):
    """集采降价后用量上升(合理): after a volume-based procurement cut a consumable's price, every hospital's ward of
    its kind bills it on a further 15–25 % of the stays (each hospital ×0.8–1.2), for good."""
    r = random.Random(f"consumable-price-cut-{sim.cfg.seed}-{t}")
    ward = r.choice(sorted(cat.CONSUMABLE_USE))
    code = r.choice([c for c, _ in cat.CONSUMABLE_USE[ward]])
    units = [i for i in sim.region.of_kind("tertiary", "secondary") if ward in i.departments
             and (i.id, ward) not in sim.consumable_extra]
    more = r.uniform(0.15, 0.25)
    for inst in units:
        local = more * r.uniform(0.8, 1.2)
        sim.consumable_extra.setdefault((inst.id, ward), []).append(
            (code, lambda now, s=t, m=local: m * min(1.0, (now - s) / (4 * DAY)) if s <= now else 0.0))
        sim.record(sc.name, "department", f"{inst.id}/{ward}", t, t + _days_left(sim, t) * DAY, sc.detectors,
                   benign=True, institution=inst.id, department=ward, consumable=code, extra_share=round(local, 3))


def low_occupancy(sim, t, sc):
    """床位使用率低(合理): a tertiary hospital whose wards stand two-fifths empty all along — its waste per registered bed 60–70 %
    of its peers', a real difference, not the half that points to waste leaving the books."""
    r = random.Random(f"low-occupancy-{sim.cfg.seed}-{int(t)}")
    end = t + _days_left(sim, t) * DAY
    inst = _waste_site(sim, r, t, end, "tertiary")  # not among the under-declaring site's peers, whose median it
    if inst is None:                               # would lower in a region of three secondary hospitals
        return
    share = r.uniform(0.6, 0.7)
    _scale_waste(sim, inst, lambda now, s=t, e=end: share if s <= now < e else 1.0)
    sim.record(sc.name, "institution", inst.id, t, end, sc.detectors, benign=True, waste_share=round(share, 2))


def catch_up_collection(sim, t, sc):
    """A hospital's carrier misses two collections (a holiday, a broken truck) and takes three days' waste on the
    third: no manifest for two days, then triple the weight, in the usual mix."""
    r = random.Random(f"catch-up-collection-{sim.cfg.seed}-{t}")
    start = _work_hours(t, 0, 1, r)
    inst = _waste_site(sim, r, start, start + 4 * DAY, "tertiary", "secondary", no_extra=True)
    if inst is None:
        return
    _scale_waste(sim, inst, lambda now, s=start: (0.0 if s <= now < s + 2 * DAY else
                                                   3.0 if s + 2 * DAY <= now < s + 3 * DAY else 1.0))
    sim.record(sc.name, "institution", inst.id, start, start + 4 * DAY, sc.detectors, benign=True)


def vaccination_campaign(sim, t, sc):
    """A community clinic's vaccination campaign: two weeks of extra syringes, its sharps 1.5–1.8 times the usual
    (a few points of its mix)."""
    r = random.Random(f"vaccination-campaign-{sim.cfg.seed}-{t}")
    more = r.uniform(1.5, 1.8)
    inst = _waste_site(sim, r, t, t + 14 * DAY, "community")
    if inst is None:
        return
    _shift_waste_mix(sim, inst, lambda now, s=t, e=t + 14 * DAY: {"sharps": more} if s <= now < e else {})
    sim.record(sc.name, "institution", inst.id, t, t + 14 * DAY, sc.detectors, benign=True, sharps=round(more, 2))


LOOK_ALIKES: tuple[Scenario, ...] = (
    Scenario("justified_long_prescription", "prescription", "长期处方(合理)", "prescriber",
             ("prescription.over_supply",), 36, 0, justified_long_prescription,
             "a chronic patient's maintenance drug for 14–28 days before travel"),
    Scenario("elderly_polypharmacy", "prescription", "多病共存用药(合理)", "prescriber",
             ("prescription.too_many_drugs", "prescription.same_action"), 24, 0, elderly_polypharmacy,
             "six or seven maintenance drugs for several chronic conditions"),
    Scenario("defrost_cycle", "telemetry", "除霜(合理)", "device", ("coldchain.excursion",), 18, 1, defrost_cycle,
             "a defrost heater passing +8 °C for a quarter of an hour"),
    Scenario("split_therapy", "claim", "跨机构分次治疗(合理)", "institution", ("claim.unlikely_units",), 8, 0,
             split_therapy, "physiotherapy split between two clinics the same day, within the daily cap"),
    Scenario("new_setpoint", "telemetry", "维修后调整设定温度(合理)", "device", ("coldchain.abnormal_dynamics",), 3, 3,
             new_setpoint, "a fridge set 0.8–1.2 °C colder after maintenance, for good", earliest_day=7.0),
    Scenario("pharmacy_at_the_gate", "claim", "院外药店取药(合理)", "patient", ("claim.two_places",), 18, 0,
             pharmacy_at_the_gate, "a hospital visit, then the pharmacy at its gate 6–25 minutes later",
             own_random=True),
    Scenario("hospital_transfer", "claim", "转院(合理)", "patient", ("claim.two_places",), 6, 12, hospital_transfer,
             "discharged from one hospital and admitted at another the same day", own_random=True),
    Scenario("chemotherapy_day_case", "claim", "日间化疗(合理)", "institution", ("claim.payment_restriction",), 12, 0,
             chemotherapy_day_case, "outpatient chemotherapy coded Z51.1 with the cancer second", own_random=True),
    Scenario("couple_follow_ups", "claim", "老年夫妇结伴复诊(合理)", "group", ("claim.group_visits",), 3, 30,
             couple_follow_ups, "a couple's weekly follow-ups together, their daughter along twice", own_random=True),
    Scenario("busy_emergency", "claim", "急诊抗菌药物(合理)", "institution", ("claim.antimicrobial_stewardship",),
             1, 0, busy_emergency, "a hospital's emergency department gives antimicrobials to a quarter to a third of "
             "its visits all along (within the emergency target)", at_start=True, own_random=True),
    Scenario("seasonal_outbreak", "prescription", "季节性流行(合理)", "prescriber",
             ("prescription.drug_usage", "prescription.department_usage"), 2, 14, seasonal_outbreak,
             "a season across the region: in one department code every hospital's prescribers add one symptomatic "
             "drug to a further 20–30 % of their acute visits for two weeks", earliest_day=10, own_random=True,
             also_entities=("department",)),
    Scenario("consumable_price_cut", "claim", "集采降价后用量上升(合理)", "department", ("claim.consumable_usage",),
             1, 14, consumable_price_cut, "after a price cut every hospital's ward of a kind bills a consumable on a "
             "further 15–25 % of its stays, for good", earliest_day=10, own_random=True),
    Scenario("low_occupancy", "waste", "床位使用率低(合理)", "institution", ("waste.generation_per_bed",), 1, 0,
             low_occupancy, "a tertiary hospital's wards two-fifths empty all along: its waste per bed 60–70 % of its "
             "peers'",
             at_start=True, own_random=True),
    Scenario("catch_up_collection", "waste", "补收医废(合理)", "institution",
             ("waste.category_mix", "waste.generation_anomaly"), 3, 4, catch_up_collection,
             "two collections missed, three days' waste on the third, in the usual mix", earliest_day=10,
             own_random=True),
    Scenario("vaccination_campaign", "waste", "疫苗接种周(合理)", "institution", ("waste.category_mix",), 3, 14,
             vaccination_campaign, "a community clinic's sharps 1.5–1.8 times the usual for two weeks",
             earliest_day=10, own_random=True),
)
LOOK_ALIKE_BY_NAME = {s.name: s for s in LOOK_ALIKES}


def schedule(sim: RegionTraffic, cycle_start: float | None = None) -> None:
    """Place each enabled scenario's instances over the horizon, stratified in time; with
    ``repeat``, place them again over each following horizon (the demo runs until stopped)."""
    cfg = sim.cfg
    names = [s.name for s in SCENARIOS] if cfg.scenarios is None else list(cfg.scenarios)
    unknown = sorted(set(names) - set(BY_NAME))
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    r = sim.rng_scenario
    start = sim.t0 if cycle_start is None else cycle_start
    horizon = cfg.days * DAY
    if cfg.look_alikes:
        names += [s.name for s in LOOK_ALIKES]
    for name in names:
        sc = BY_NAME.get(name) or LOOK_ALIKE_BY_NAME[name]
        if sc.at_start:
            sim._call(start, sim.run_scenario, sc)
            continue
        n = max(1, round(sc.per_30_days * cfg.days / 30 * cfg.scenario_rate))
        first = min(max(cfg.warmup_days, sc.earliest_day) * DAY, horizon / 4 if not sc.earliest_day else horizon / 2)
        tail = max(DAY, min(sc.span_days * DAY, horizon * 2 / 3))  # and a day: it may move to the next working day
        room = max(horizon / 4, horizon - first - tail)
        place = random.Random(f"place-{name}-{cfg.seed}-{start}") if sc.own_random else r
        for k in range(n):
            at = start + first + room * (k + place.random()) / n
            sim._call(at, sim.run_scenario, sc)
    if cfg.repeat and names:
        sim._call(start + horizon, lambda t: schedule(sim, t))
