"""The region's normal traffic on a simulated clock: what every honest institution, fridge and carrier sends.

Every hour of simulated time, each institution draws its outpatient visits from its size and
the time of day and week (mornings busiest, weekends quieter at hospitals, not at pharmacies);
each visit is a prescription and a claim settled minutes later. Hospitals admit inpatients
every day and bill the stay at discharge (oncology patients return for planned chemotherapy
cycles). Waste is weighed each evening in proportion to bed-days and visits, split over the
five categories, and follows its manifest: handed over, received, disposed. Fridges, cold
rooms and vehicles report their temperature (see :mod:`streams.lab.simulator.coldchain`).

Scenarios (:mod:`streams.lab.simulator.scenarios`) act on this traffic through its hooks — they alter or
add events, and keep what they did in :attr:`RegionTraffic.truth`, never in the events; this module knows none
of them (:class:`streams.lab.simulator.simulator.RegionSimulator` places them).

>>> sim = RegionTraffic(SimulationConfig(seed=3, days=2, scale=0.2))
>>> events = list(sim.until(sim.t0 + 6 * 3600))
>>> sorted({stream for stream, _, _ in events})
['claim', 'prescription', 'telemetry']
>>> again = RegionTraffic(SimulationConfig(seed=3, days=2, scale=0.2))
>>> list(again.until(again.t0 + 6 * 3600)) == events
True
"""
from __future__ import annotations

import heapq
import math
import random
import zlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator

from streams.lab.simulator import catalogue as cat
from streams.lab.simulator.coldchain import Unit
from streams.lab.simulator.region import CONDITIONS, Institution, Patient, Region, build_region

TZ = cat.TZ  # China Standard Time
DEFAULT_START = datetime(2026, 10, 12, tzinfo=TZ)  # a Monday
#: share of a weekday's outpatient visits that arrive in each hour of the day
HOURLY = [0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 2.5, 9.0, 11.0, 10.5, 8.0, 4.0, 5.0, 8.5, 8.5, 7.5, 5.0, 3.0,
          2.5, 2.0, 1.5, 0.8, 0.4]
HOURLY = [h / sum(HOURLY) for h in HOURLY]
WEEKEND = {"tertiary": 0.55, "secondary": 0.5, "community": 0.35, "private_clinic": 0.9, "pharmacy": 1.1}
ACUTE_DIAGNOSES = ("J06.9", "J20.9", "K29.7", "M54.5", "R51", "J02.9", "A09.9", "L30.9", "N39.0")
ANTIMICROBIAL_DIAGNOSES = ("J20.9", "J02.9", "N39.0", "J18.9")

Event = tuple[str, str, dict[str, Any]]  # (stream, partition key, event)


@dataclass
class SimulationConfig:
    seed: int = 7
    days: float = 30.0  # the horizon over which scenarios are placed; traffic itself never ends
    scale: float = 1.0  # institutions and patients, × the default region
    start: datetime = DEFAULT_START
    scenarios: tuple[str, ...] | None = None  # None = every scenario; () = clean traffic
    scenario_rate: float = 1.0  # × each scenario's instances per 30 days
    warmup_days: float = 1.0  # no scenario starts before this (detectors that learn need some history)
    repeat: bool = False  # place the scenarios again over every following horizon
    look_alikes: bool = False  # plant benign look-alikes too (scenarios.LOOK_ALIKES: alerts an analyst justifies)
    #: the id counters a resumed region goes on from (prefix → last number used): a second demo run continues the
    #: first's claims and prescriptions instead of sending their ids again with other contents
    first_ids: dict[str, int] | None = None
    #: and the visits of its last days (day → [patient, institution] pairs): nobody visits a site twice in a day
    first_visits: dict[str, list[list[str]]] | None = None


@dataclass
class Stay:
    institution: Institution
    patient: Patient
    department: str
    diagnosis: str
    admitted_t: float
    discharge_t: float
    planned: bool = False
    drugs: list[dict[str, Any]] | None = None  # the admission prescription's items, billed at discharge


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, TZ).isoformat(timespec="seconds")


day_of = cat.day_of


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    k, p, limit = 0, rng.random(), math.exp(-lam)
    while p > limit:
        k += 1
        p *= rng.random()
    return k


#: Vaccines of the national immunisation programme (免疫规划疫苗) and whether freezing destroys them.
VACCINES = [("HEPB", True), ("BCG", False), ("OPV", False), ("DTAP", True), ("MMR", False), ("JE-L", False),
            ("MPSV-A", True), ("HEPA-L", False), ("DT", True), ("IPV", True)]


class RegionTraffic:
    """Iterates ``(stream, key, event)`` in simulated-time order; ``truth`` holds the incidents scenarios record."""

    def __init__(self, config: SimulationConfig | None = None, region: Region | None = None) -> None:
        self.cfg = cfg = config or SimulationConfig()
        self.region = region or build_region(cfg.seed, cfg.scale)
        self.t0 = cfg.start.timestamp()
        self.now = self.t0
        seed = cfg.seed
        self.rng_visit = random.Random(f"visits-{seed}")
        self.rng_stay = random.Random(f"stays-{seed}")
        self.rng_waste = random.Random(f"waste-{seed}")
        self.rng_cold = random.Random(f"coldchain-{seed}")
        self.rng_scenario = random.Random(f"scenarios-{seed}")
        self.rng_correction = random.Random(f"corrections-{seed}")
        self._queue: list[tuple[float, int, str, Any, Any]] = []
        self._seq = 0
        self._ids: dict[str, int] = defaultdict(int, cfg.first_ids or {})
        self.truth: list[dict[str, Any]] = []
        r = self.region
        self.units = {d.id: Unit(d) for d in r.devices}
        self.silent: dict[str, tuple[float, float]] = {}  # device → window without readings
        self.stays: dict[str, Stay] = {}  # patient id → current inpatient stay
        self.whereabouts: dict[str, list[float]] = {}  # patient id → times of their recent visits (pick_patient)
        self._pool_index: dict[int, dict[str, int]] = {}
        self.discharged: dict[str, float] = {}  # patient id → last discharge
        #: day → (patient, institution) pairs with a visit that day: one visit per site and day, or the
        #: second would bill the same consultation (a duplicate charge the scenario did not inject)
        self.visited: dict[str, set[tuple[str, str]]] = {
            day: {(p, i) for p, i in pairs} for day, pairs in (cfg.first_visits or {}).items()}
        self.carrier_of = {i.id: r.carriers[n % len(r.carriers)] for n, i in enumerate(r.institutions)}
        self.antimicrobial_rate = {p: self.rng_visit.uniform(0.06, 0.2) for i in r.institutions for p in i.prescribers}
        #: scenario hooks: prescriber → f(t) multiplying antimicrobial use; institution → f(t) × waste;
        #: institution → f(t) probability of an upcoded visit; manifests whose life a scenario rewrites
        self.antimicrobial_boost: dict[str, Callable[[float], float]] = {}
        #: prescriber → (drug, from, until, share of their acute visits, the push's own random source): a drug
        #: pushed for a kickback (带金销售), written into that share of their visits (scenarios.drug_push)
        self.drug_push: dict[str, tuple[Any, float, float, float, Any]] = {}
        #: prescriber → [(drug, f(t) → probability, random source, acute visits only)]: a drug added to that share of
        #: their visits on top of their habits (a single prescriber's surge, a department's influenza season)
        self.drug_extra: dict[str, list[tuple[Any, Callable[[float], float], Any, bool]]] = {}
        #: hospital prescribers' habit of key-monitored injections 重点监控药品 (most use a little, some none), drawn
        #: from generators of their own so that the rest of the traffic draws as it did before they existed
        keys = random.Random(f"key-drug-habits-{seed}")
        self.key_drug_rate = {p: (keys.uniform(0.005, 0.04) if keys.random() < 0.6 else 0.0)
                              for i in r.institutions if i.kind in ("tertiary", "secondary") for p in i.prescribers}
        self.rng_key = random.Random(f"key-drug-visits-{seed}")
        #: institution → the share of its wards' stays given an antimicrobial (scenarios.antimicrobial_overuse)
        self.inpatient_antimicrobial: dict[str, float] = {}
        self.rng_antimicrobial = random.Random(f"inpatient-antimicrobials-{seed}")
        #: (institution, ward) → [(consumable code, f(t) → a further share of its stays billing it)]: a ward
        #: implanting more than its patients need, or every ward after a price cut (scenarios.consumable_overuse)
        self.consumable_extra: dict[tuple[str, str], list[tuple[str, Callable[[float], float]]]] = {}
        self.rng_consumable = random.Random(f"consumables-{seed}")
        self.waste_factor: dict[str, Callable[[float], float]] = {}
        #: institution → f(t) giving a factor per waste category (a category leaving the books, a campaign's sharps)
        self.waste_mix: dict[str, Callable[[float], dict[str, float]]] = {}
        self.upcoding: dict[str, Callable[[float], float]] = {}
        self.manifest_hooks: list[Callable[[dict[str, Any], float], dict[str, Any] | None]] = []
        #: institution → (start, end, practice → intensity): the standing fraud of scenarios.fraudulent_institution,
        #: drawn from its own generator so that the honest traffic around it stays the same
        self.fraud: dict[str, tuple[float, float, dict[str, float]]] = {}
        self.rng_fraud = random.Random(f"fraud-acts-{seed}")
        #: the scenarios draw their patients from a reserve normal traffic never visits, so an injected
        #: event cannot collide with a normal one (which would make a labelled-clean alert look false)
        reserve = min(1000, len(r.patients) // 10)
        self.patients, self.scenario_patients = r.patients[:-reserve], r.patients[-reserve:]
        #: a few of the reserve died before the start (the civil registry's date, in zhijian.beneficiaries):
        #: only the settlement-after-death scenario bills them
        dead = max(1, reserve // 25)
        self.scenario_patients, self.deceased = self.scenario_patients[:-dead], self.scenario_patients[-dead:]
        rng_deaths = random.Random(f"deaths-{seed}")
        self.death_date = {p.id: max(day_of(self.t0 - rng_deaths.uniform(10, 400) * 86400), self.birth_date(p))
                           for p in self.deceased}  # an infant dies no earlier than its birth
        self.chronic = [p for p in self.patients if p.conditions]
        self.visitors = [i for i in r.institutions if i.weekday_visits > 0]
        self.hospitals = [i for i in r.institutions if i.beds > 0]
        self.pharmacies = r.of_kind("pharmacy")
        self._call(self.t0, self._hour)
        self._call(self.t0, self._day)
        for i, d in enumerate(r.devices):
            self._call(self.t0 + (i * 37) % d.interval_s, self._reading, d.id)

    def stock(self) -> list[dict[str, Any]]:
        """The vaccine stock of every fridge and cold room at the start (topic ``zhijian.inventory``, one
        snapshot per device keyed by its id): two to six lots of the national programme's vaccines."""
        rng = random.Random(f"stock-{self.cfg.seed}")  # its own stream: the events do not change with it
        out = []
        for d in self.region.devices:
            if d.kind == "vehicle":
                continue
            lots = []
            for product, sensitive in rng.sample(VACCINES, rng.randint(2, 6)):
                made = datetime.fromtimestamp(self.t0, TZ) - timedelta(days=rng.randint(30, 300))
                lots.append({"lot": f"{made:%Y%m}{chr(65 + rng.randrange(26))}{rng.randint(1, 99):02d}",
                             "product_code": product, "doses": 10 * rng.randint(5, 60),
                             "expiry": (made + timedelta(days=730)).date().isoformat(), "freeze_sensitive": sensitive})
            out.append({"schema_version": 1, "device_id": d.id, "facility_id": d.facility_id,
                        "event_time": iso(self.t0), "lots": lots})
        return out

    def references(self) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """The reference data of the region, table → (key, record): what goes on the compacted topics first."""
        return {"inventory": [(s["device_id"], s) for s in self.stock()],
                "beneficiary": [(b["patient_id"], b) for b in self.beneficiaries()]}

    def birth_date(self, p: Patient) -> str:
        """The birth date a patient's national id carries (an infant's id may carry a day after the start: born
        by then)."""
        b = p.id[6:14]
        return min(f"{b[:4]}-{b[4:6]}-{b[6:]}", day_of(self.t0 - 86400))

    def beneficiaries(self) -> list[dict[str, Any]]:
        """Every insured person's facts (topic ``zhijian.beneficiaries``, keyed by patient id): the birth date
        their national id carries, their sex, and the date of death of those who died."""
        out = []
        for p in self.region.patients:
            event = {"schema_version": 1, "patient_id": p.id, "event_time": iso(self.t0 - 86400),
                     "birth_date": self.birth_date(p), "sex": p.sex, "region": p.district}
            if p.id in self.death_date:
                event["death_date"] = self.death_date[p.id]
            out.append(event)
        return out

    # --- the clock -------------------------------------------------------------------------
    def _call(self, t: float, fn: Callable[..., Iterator[Event] | None], arg: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (t, self._seq, "", fn, arg))

    def emit(self, t: float, stream: str, key: str, event: dict[str, Any]) -> None:
        """Schedule an event at simulated time ``t``."""
        self._seq += 1
        heapq.heappush(self._queue, (t, self._seq, stream, key, event))

    def until(self, t_end: float) -> Iterator[Event]:
        """Every event with simulated time ≤ ``t_end``, in time order."""
        q = self._queue
        while q and q[0][0] <= t_end:
            t, _, stream, a, b = heapq.heappop(q)
            self.now = t
            if stream:
                yield stream, a, b
            else:
                out = a(t, b) if b is not None else a(t)
                if out is not None:
                    yield from out

    def id_counters(self) -> dict[str, int]:
        """The last number used per id prefix (a resumed region goes on from them: ``SimulationConfig.first_ids``)."""
        return dict(self._ids)

    def recent_visits(self) -> dict[str, list[list[str]]]:
        """The visits of the days kept (``SimulationConfig.first_visits`` of a resumed region)."""
        return {day: sorted([p, i] for p, i in pairs) for day, pairs in self.visited.items()}

    def next_id(self, prefix: str) -> str:
        self._ids[prefix] += 1
        return f"{prefix}{self.cfg.seed:02d}{self._ids[prefix]:09d}"

    def run_scenario(self, t: float, scenario: Any) -> None:
        scenario.inject(self, t, scenario)

    def record(self, scenario: str, entity_kind: str, entity_id: str, start_t: float, end_t: float,
               detectors: tuple[str, ...], **detail: Any) -> None:
        """Write one incident of ground truth."""
        start_t = math.floor(start_t)  # events carry whole seconds
        self.truth.append({"scenario": scenario, "entity": {"kind": entity_kind, "id": entity_id},
                           "start": iso(start_t), "end": iso(end_t), "start_t": start_t, "end_t": end_t,
                           "detectors": list(detectors), "detail": detail})

    # --- outpatient visits -----------------------------------------------------------------
    def _hour(self, t: float) -> None:
        self._call(t + 3600, self._hour)
        local = datetime.fromtimestamp(t, TZ)
        for old in [d for d in self.visited if d < day_of(t - 2 * 86400)]:
            del self.visited[old]
        weekend = local.weekday() >= 5
        share = HOURLY[local.hour]
        r = self.rng_visit
        for inst in self.visitors:
            lam = inst.weekday_visits * share * (WEEKEND[inst.kind] if weekend else 1.0)
            if inst.kind == "pharmacy":  # pharmacies keep shop hours, flatter through the day
                lam = inst.weekday_visits / 13 if 8 <= local.hour < 21 else 0.0
            for _ in range(poisson(r, lam)):
                self.visit(t + r.random() * 3600, inst)

    def pick_patient(self, inst: Institution, t: float, chronic: bool = False) -> Patient | None:
        r = self.rng_visit
        pool = self.chronic if chronic and self.chronic else self.patients
        seen = self.visited.setdefault(day_of(t), set())
        for _ in range(6):
            p = r.choice(pool)
            if (p.id, inst.id) not in seen and p.id not in self.stays:
                # someone at another site within hours is not here: the next free one in the pool comes instead
                # (found without a draw, so the rest of the world is drawn as before)
                p = self._free(pool, p, inst, t, seen)
                if p is not None:
                    seen.add((p.id, inst.id))
                    self._at(p.id, t)
                return p
        return None

    #: a patient's visits at two sites are at least this far apart (nobody settles across the city minutes after
    #: settling elsewhere: claim.two_places would rightly call it one card in two places)
    APART_S = 3 * 3600.0

    def _busy(self, patient: str, t: float) -> bool:
        return any(abs(t - x) < self.APART_S for x in self.whereabouts.get(patient, ()))

    def _at(self, patient: str, t: float) -> None:
        kept = [x for x in self.whereabouts.get(patient, ()) if x > t - 2 * self.APART_S]
        self.whereabouts[patient] = kept + [t]

    def _free(self, pool: list[Patient], p: Patient, inst: Institution, t: float,
              seen: set[tuple[str, str]]) -> Patient | None:
        if not self._busy(p.id, t):
            return p
        index = self._pool_index.get(id(pool))
        if index is None:
            index = self._pool_index[id(pool)] = {q.id: n for n, q in enumerate(pool)}
        start = index[p.id]
        for k in range(1, 64):
            q = pool[(start + k) % len(pool)]
            if (q.id, inst.id) not in seen and q.id not in self.stays and not self._busy(q.id, t):
                return q
        return None

    def practice(self, inst: Institution, name: str, t: float) -> float:
        """The intensity of a fraud practice the institution runs at ``t`` (0: none)."""
        f = self.fraud.get(inst.id)
        return f[2].get(name, 0.0) if f is not None and f[0] <= t < f[1] else 0.0

    def _phantom_visit(self, t: float, visit: tuple[Institution, str, Patient, list[str], list[str]]) -> None:
        """A visit billed again days later for a patient who did not come (no prescription: only a bill)."""
        inst, doctor, patient, diagnoses, services = visit
        seen = self.visited.setdefault(day_of(t), set())
        if (patient.id, inst.id) in seen or patient.id in self.stays or self._busy(patient.id, t):
            return  # a real visit that day, in hospital or elsewhere: the phantom would collide with another rule
        seen.add((patient.id, inst.id))
        self._at(patient.id, t)
        self.claim(t, inst, doctor, patient, "outpatient", diagnoses,
                   [self.service_line(s, 1, day_of(t)) for s in services])

    def _phantom_dispensing(self, t: float, visit: tuple[Institution, Patient]) -> None:
        inst, patient = visit
        seen = self.visited.setdefault(day_of(t), set())
        if (patient.id, inst.id) in seen or patient.id in self.stays or self._busy(patient.id, t):
            return
        seen.add((patient.id, inst.id))
        self._at(patient.id, t)
        self.pharmacy_claim(t, inst, patient, inst.prescribers[0])

    def visit(self, t: float, inst: Institution) -> None:
        r = self.rng_visit
        if inst.kind == "pharmacy":
            patient = self.pick_patient(inst, t, chronic=r.random() < 0.7)
            if patient is not None:
                self.pharmacy_claim(t, inst, patient, r.choice(inst.prescribers))
                if self.rng_fraud.random() < self.practice(inst, "phantom_dispensing", t):
                    self._call(t + self.rng_fraud.uniform(2, 6) * 86400, self._phantom_dispensing, (inst, patient))
            return
        prescriber = r.choice(inst.prescribers)
        dept = inst.prescriber_dept[prescriber]
        visit_type = "emergency" if dept == "ER" else "outpatient"
        chronic_visit = dept in ("IM", "GP", "CARD") and r.random() < (0.55 if inst.kind == "community" else 0.3)
        patient = self.pick_patient(inst, t, chronic=chronic_visit)
        if patient is None:
            return
        items, diagnoses = [], []
        if chronic_visit and patient.conditions:
            visit_type = "long_term"
            for cond in patient.conditions:
                diagnoses.append(CONDITIONS[cond][0])
                drug = r.choice(cat.CHRONIC[cond])
                items.append(self.item(drug, 28))
            self._extra_drugs(t, prescriber, items, 7, acute=False)
        else:
            diagnosis = r.choice(ACUTE_DIAGNOSES)
            diagnoses.append(diagnosis)
            limit = 3 if visit_type == "emergency" else 7
            for drug in r.sample(cat.ACUTE, r.choice((1, 1, 2, 2, 3))):
                items.append(self.item(drug, r.randint(2, limit)))
            rate = self.antimicrobial_rate[prescriber] * (2.0 if diagnosis in ANTIMICROBIAL_DIAGNOSES else 0.6)
            boost = self.antimicrobial_boost.get(prescriber)
            if boost is not None:
                rate *= boost(t)
            if r.random() < min(0.95, rate):
                items.append(self.item(r.choice(cat.ANTIMICROBIALS), r.randint(3, limit)))
            push = self.drug_push.get(prescriber)
            if push is not None and push[1] <= t < push[2] and push[4].random() < push[3]:
                items.append(self.item(push[0], push[4].randint(3, limit)))
            self._more_drugs(t, prescriber, items, limit)
        rx = self.prescription(t, inst, prescriber, patient, visit_type, items, diagnoses)
        services = ["S-CONSULT-ER" if visit_type == "emergency" else "S-CONSULT"]
        if inst.kind in ("tertiary", "secondary") and r.random() < 0.45:
            services += r.sample(cat.OUTPATIENT_TESTS, r.choice((1, 1, 2, 3)))
        if visit_type == "emergency" and r.random() < 0.3:
            services.append("S-IV")
        up = self.upcoding.get(inst.id)
        if up is not None and r.random() < up(t):
            services += [s for s in ("S-CT-HEAD", "S-US-ABD", "S-LIVER") if s not in services]
        day = day_of(t)
        billed_by = prescriber
        if inst.id in self.fraud:
            f = self.rng_fraud
            if f.random() < self.practice(inst, "upcoding", t):
                services += [s for s in (f.choice(("S-CT-HEAD", "S-US-ABD")),) if s not in services]
            if visit_type != "emergency" and f.random() < self.practice(inst, "borrowed_physicians", t):
                other = f.choice([i for i in self.visitors if i.id != inst.id and i.kind != "pharmacy"])
                billed_by = f.choice(other.prescribers)  # 挂证: a physician of another institution on the bill
            if visit_type != "emergency" and f.random() < self.practice(inst, "phantom_visits", t):
                again = t + f.uniform(1, 5) * 86400
                self._call(again, self._phantom_visit, (inst, billed_by, patient, diagnoses, services[:2]))
        lines = [self.service_line(s, 1, day) for s in services] + self.drug_lines(rx["items"], day)
        self.claim(t + r.uniform(120, 1500), inst, billed_by, patient, "emergency" if visit_type == "emergency"
                   else "outpatient", diagnoses, lines)

    def _more_drugs(self, t: float, prescriber: str, items: list[dict[str, Any]], limit: int) -> None:
        """A hospital prescriber's occasional key-monitored injection, and the drugs scenarios add to acute visits."""
        rate = self.key_drug_rate.get(prescriber)
        if rate and self.rng_key.random() < rate:
            drug, days = self.rng_key.choice(cat.KEY_MONITORED), self.rng_key.randint(3, limit)
            if all(it["drug_code"] != drug.code for it in items):
                items.append(self.item(drug, days))
        self._extra_drugs(t, prescriber, items, limit, acute=True)

    def _extra_drugs(self, t: float, prescriber: str, items: list[dict[str, Any]], limit: int, acute: bool) -> None:
        for drug, share, rng, acute_only in self.drug_extra.get(prescriber, ()):
            if (acute or not acute_only) and rng.random() < share(t) and all(
                    it["drug_code"] != drug.code for it in items):
                items.append(self.item(drug, rng.randint(2, limit)))

    # --- building events -------------------------------------------------------------------
    def item(self, drug: cat.Drug, days: int, per_day: int | None = None) -> dict[str, Any]:
        qty = days * (per_day or drug.units_per_day)
        out = {"drug_code": drug.code, "atc_code": drug.atc, "name": drug.name, "quantity": qty,
               "unit": drug.unit, "days_supply": days, "amount": round(qty * drug.price, 2),
               "dosage_form": drug.form, "controlled_class": drug.controlled}
        ddd = drug.ddd_count(qty)
        if ddd is not None:
            out["ddd_count"] = ddd
        return out

    def prescription(self, t: float, inst: Institution, prescriber: str, patient: Patient, visit_type: str,
                     items: list[dict[str, Any]], diagnoses: list[str], reason: str | None = None) -> dict[str, Any]:
        event = {"schema_version": 1, "prescription_id": self.next_id("RX"), "event_time": iso(t),
                 "institution_id": inst.id, "region": inst.district,
                 "department": inst.prescriber_dept.get(prescriber, "GP"), "prescriber_id": prescriber,
                 "patient_id": patient.id, "visit_type": visit_type, "items": items, "diagnoses": diagnoses}
        if reason:
            event["long_term_reason"] = reason
        self.emit(t, "prescription", patient.id, event)
        return event

    def service_line(self, code: str, quantity: int, day: str | None = None, price: float | None = None) -> dict[str, Any]:
        s = cat.SERVICE_BY_CODE[code]
        unit_price = s.price if price is None else price
        line = {"item_code": s.code, "category": s.category, "name": s.name, "quantity": quantity,
                "unit_price": unit_price, "amount": round(unit_price * quantity, 2)}
        if s.minutes:
            line["billed_minutes"] = s.minutes * quantity
        if day:
            line["service_date"] = day
        return line

    @staticmethod
    def drug_lines(items: list[dict[str, Any]], day: str | None = None) -> list[dict[str, Any]]:
        lines = [{"item_code": it["drug_code"], "category": "drug", "name": it["name"], "quantity": it["quantity"],
                  "unit_price": cat.DRUG_BY_CODE[it["drug_code"]].price, "amount": it["amount"]} for it in items]
        if day:
            for line in lines:
                line["service_date"] = day
        return lines

    def claim(self, t: float, inst: Institution, doctor: str, patient: Patient, claim_type: str,
              diagnoses: list[str], lines: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        total = round(sum(x["amount"] for x in lines), 2)
        share = {"inpatient": 0.75, "pharmacy": 0.6}.get(claim_type, 0.55)
        event = {"schema_version": 1, "claim_id": self.next_id("CL"), "event_time": iso(t),
                 "institution_id": inst.id, "region": inst.district, "doctor_id": doctor,
                 "patient_id": patient.id, "claim_type": claim_type, "diagnoses": diagnoses, "items": lines,
                 "total_amount": total, "fund_paid": round(total * share, 2), "settlement_site": inst.id, **extra}
        self.emit(t, "claim", patient.id, event)
        self._correct(t, patient.id, event, share)
        return event

    #: Claims corrected after settlement, as real feeds do (../shared/brief/claims-lifecycle.md): a share replaced
    #: with a corrected price hours later (same claim id, version 2), a smaller share refunded — withdrawn under a
    #: refund id and settled again under a new settlement id (退费: void, then the visit's replacement).
    REPLACED, REFUNDED = 0.02, 0.005

    def _correct(self, t: float, key: str, event: dict[str, Any], share: float) -> None:
        r = self.rng_correction
        roll = r.random()
        if roll >= self.REPLACED + self.REFUNDED:
            return
        lines = [dict(x) for x in event["items"]]
        line = lines[r.randrange(len(lines))]  # one line's price corrected (a code the tariff had wrong)
        line["unit_price"] = round(line["unit_price"] * r.choice((0.8, 0.9, 1.1)), 2)
        line["amount"] = round(line["unit_price"] * line["quantity"], 2)
        total = round(sum(x["amount"] for x in lines), 2)
        fixed = {**event, "items": lines, "total_amount": total, "fund_paid": round(total * share, 2)}
        if roll < self.REPLACED:
            at = t + r.uniform(1, 8) * 3600
            self.emit(at, "claim", key, {**fixed, "event_time": iso(at), "adjustment": "replacement", "version": 2})
            return
        at = t + r.uniform(2, 24) * 3600
        self.emit(at, "claim", key, {**event, "claim_id": self.next_id("RF"), "original_claim_id": event["claim_id"],
                                     "event_time": iso(at), "adjustment": "void", "version": 2})
        self.emit(at + 60, "claim", key, {**fixed, "claim_id": self.next_id("RS"), "original_claim_id": event["claim_id"],
                                          "event_time": iso(at + 60), "adjustment": "replacement", "version": 3})

    def pharmacy_claim(self, t: float, inst: Institution, patient: Patient, pharmacist: str,
                       drugs: list[cat.Drug] | None = None) -> dict[str, Any]:
        r = self.rng_visit
        if drugs is None:
            drugs = [r.choice(cat.CHRONIC[c]) for c in patient.conditions] or r.sample(cat.ACUTE, 1)
        items = [self.item(d, 14 if d.chronic_for else r.randint(2, 5)) for d in drugs]
        diagnoses = [CONDITIONS[c][0] for c in patient.conditions] or ["R69"]
        return self.claim(t, inst, pharmacist, patient, "pharmacy", diagnoses, self.drug_lines(items, day_of(t)))

    # --- inpatient stays -------------------------------------------------------------------
    def _day(self, t: float) -> None:
        self._call(t + 86400, self._day)
        weekend = datetime.fromtimestamp(t, TZ).weekday() >= 5
        r = self.rng_stay
        for inst in self.hospitals:
            los_mean = {"tertiary": 8.0, "secondary": 7.0}.get(inst.kind, 11.0)
            lam = inst.beds * 0.85 / los_mean * (0.6 if weekend else 1.15)
            for _ in range(poisson(r, lam)):
                self.admit(t + r.uniform(8, 18) * 3600, inst, los=max(1, round(r.lognormvariate(math.log(los_mean), 0.5))))
        self.waste_day(t)

    def admit(self, t: float, inst: Institution, los: int, patient: Patient | None = None,
              diagnosis: str | None = None, department: str | None = None, planned: bool = False) -> Stay | None:
        r = self.rng_stay
        seen = self.visited.setdefault(day_of(t), set())
        if patient is None:  # not someone discharged lately: a readmission is a scenario's to plant
            for _ in range(6):
                p = r.choice(self.patients)
                # nor someone seen there as an outpatient that day: the stay bills the same tests on that day
                if (p.id not in self.stays and self.discharged.get(p.id, -1e18) < t - 30 * 86400
                        and (p.id, inst.id) not in seen):
                    patient = p
                    break
            else:
                return None
        seen.add((patient.id, inst.id))  # and no outpatient visit there later that day
        dept = department or r.choice([d for d in inst.departments if d != "ER"] or ["GP"])
        if diagnosis is None:
            diagnosis = {"SURG": "K35.8", "ONC": "C34.9", "CARD": "I21.9", "RESP": "J18.9", "NEPH": "N18.5",
                         "PED": "J18.9"}.get(dept, r.choice(("I63.9", "J44.1", "E11.9", "K80.2")))
        stretch = self.practice(inst, "long_stays", t)
        if stretch:
            los = max(los + 1, round(los * stretch))
        discharge = t + los * 86400 - r.uniform(0, 6) * 3600
        stay = Stay(inst, patient, dept, diagnosis, t, discharge, planned)
        self.stays[patient.id] = stay
        self._call(discharge, self._discharge, stay)
        prescriber = r.choice([p for p, d in inst.prescriber_dept.items() if d == dept] or inst.prescribers)
        items = [self.item(r.choice(cat.ACUTE), 1)]
        # surgical prophylaxis and pneumonia: most stays of these wards, a few of the others (a ward's share thinned
        # by a generator of its own, so the use rate stays within the national 60 %; an overusing hospital's higher)
        usual = dept in ("SURG", "RESP", "PED") or r.random() < 0.15  # the draw of before: the world stays
        overuse = self.inpatient_antimicrobial.get(inst.id)
        if (self.rng_antimicrobial.random() < overuse if overuse is not None else
                usual and self.rng_antimicrobial.random() < (0.6 if dept in ("SURG", "RESP", "PED") else 1.0)):
            items.append(self.item(cat.DRUG_BY_CODE["D-CRO1G"], min(3, los), per_day=2))
        if inst.kind == "tertiary" and r.random() < 0.12:
            items.append(self.item(r.choice(cat.KEY_MONITORED), 1))
        self.prescription(t + 1800, inst, prescriber, patient, "inpatient", items, [diagnosis])
        stay.drugs = items
        return stay

    def _discharge(self, t: float, stay: Stay) -> None:
        if self.stays.get(stay.patient.id) is stay:
            del self.stays[stay.patient.id]
        self.discharged[stay.patient.id] = t
        r = self.rng_stay
        inst = stay.institution
        days = max(1, round((stay.discharge_t - stay.admitted_t) / 86400))
        admitted = day_of(stay.admitted_t)
        # no outpatient visit there later the same day: it would bill the same tests
        self.visited.setdefault(day_of(t), set()).add((stay.patient.id, inst.id))
        lines = [self.service_line("S-BED", days), self.service_line("S-NURSE1", days),
                 self.service_line("S-CBC", 1, admitted), self.service_line("S-LIVER", 1, admitted)]
        if stay.department == "SURG":
            lines.append(self.service_line("S-APPY", 1))
        if stay.department == "CARD":
            lines.append(self.service_line("S-MONITOR", min(days, 3) * 24))
        if stay.department == "ONC":
            lines.append(self.service_line("S-CHEMO", 1))
        lines.append(self.service_line("S-IV", min(days * 2, 20)))
        lines += self.consumable_lines(t, inst, stay.department)
        lines += self.drug_lines([self.item(cat.DRUG_BY_CODE["D-OME20"], days)]
                                 + [it for it in stay.drugs or () if it["drug_code"] != "D-OME20"])
        doctor = r.choice(inst.prescribers)
        self.claim(t, inst, doctor, stay.patient, "inpatient", [stay.diagnosis], lines,
                   admission_date=day_of(stay.admitted_t), discharge_date=day_of(t),
                   discharge_department=stay.department)
        if stay.department != "ONC" and self.rng_fraud.random() < self.practice(inst, "readmissions", t):
            self._call(t + self.rng_fraud.uniform(16, 28) * 86400, self._readmit_unplanned, stay)
        if stay.department == "ONC" and r.random() < 0.8:  # the next planned chemotherapy cycle
            back = t + r.uniform(14, 21) * 86400
            self._call(back, self._readmit, stay)

    def consumable_lines(self, t: float, inst: Institution, ward: str) -> list[dict[str, Any]]:
        """The high-value consumables a stay in ``ward`` bills (drawn from a generator of their own, so the rest of
        the traffic draws as it did before them): the ward's usual share, and any further share a scenario sets."""
        r, lines = self.rng_consumable, []
        extra = dict((code, f(t)) for code, f in self.consumable_extra.get((inst.id, ward), ()))
        for code, share in cat.CONSUMABLE_USE.get(ward, ()):
            if r.random() < share + extra.pop(code, 0.0) * (1 - share):
                lines.append(self.service_line(code, 1 if r.random() < 0.75 else 2))
        for code, more in sorted(extra.items()):  # a consumable the ward does not usually bill
            if r.random() < more:
                lines.append(self.service_line(code, 1))
        return lines

    def _seen_today(self, t: float, stay: Stay, again: Callable[[float, Stay], None]) -> bool:
        """A patient back for a stay who was seen there as an outpatient earlier that day comes the next day
        instead (the stay would bill that day's tests a second time)."""
        if (stay.patient.id, stay.institution.id) in self.visited.get(day_of(t), ()):
            self._call(t + 86400, again, stay)
            return True
        return False

    def _readmit_unplanned(self, t: float, stay: Stay) -> None:
        """Brought back for the same condition after the 15-day rule's window (a fraudulent institution's)."""
        if stay.patient.id not in self.stays and not self._seen_today(t, stay, self._readmit_unplanned):
            self.admit(t, stay.institution, max(2, round(self.rng_fraud.uniform(3, 7))), stay.patient,
                       stay.diagnosis, stay.department)

    def _readmit(self, t: float, stay: Stay) -> None:
        if stay.patient.id not in self.stays and not self._seen_today(t, stay, self._readmit):
            self.admit(t, stay.institution, 3, stay.patient, stay.diagnosis, "ONC", planned=True)

    # --- medical waste ---------------------------------------------------------------------
    def waste_day(self, t: float) -> None:
        """Each site weighs the day's waste in the evening (decided then, so scenarios can act on it)."""
        r = self.rng_waste
        for inst in self.visitors:
            if inst.kind != "pharmacy":
                self._call(t + r.uniform(19, 21) * 3600, self._weigh, inst)

    @staticmethod
    def usual_waste_kg(inst: Institution, category: str) -> float:
        """A site's usual kilograms of a waste category at one collection (a weekday's)."""
        kg = inst.beds * 0.85 * cat.WASTE_KG_PER_BED_DAY + inst.weekday_visits * cat.WASTE_KG_PER_VISIT
        return kg * (1 if inst.kind in ("tertiary", "secondary") else 2) * cat.WASTE_MIX[category]

    def _weigh(self, t: float, inst: Institution) -> None:
        local = datetime.fromtimestamp(t, TZ)
        daily_pickup = inst.kind in ("tertiary", "secondary")
        if not daily_pickup and local.toordinal() % 2:  # small sites: collected every other day
            return
        r = self.rng_waste
        visits = inst.weekday_visits * (WEEKEND[inst.kind] if local.weekday() >= 5 else 1.0)
        kg = inst.beds * 0.85 * cat.WASTE_KG_PER_BED_DAY + visits * cat.WASTE_KG_PER_VISIT
        kg *= 1 if daily_pickup else 2  # two days' waste at each collection
        factor = self.waste_factor.get(inst.id)
        if factor is not None:
            kg *= factor(t)
        mix = self.waste_mix.get(inst.id)
        by_category = mix(t) if mix is not None else {}
        for category, share in cat.WASTE_MIX.items():
            w = round(kg * share * by_category.get(category, 1.0) * r.uniform(0.85, 1.15), 1)
            if w >= 0.3:
                self.manifest(t, inst, category, w)

    def manifest(self, t: float, inst: Institution, category: str, weight: float) -> None:
        r = self.rng_waste
        facility = "FAC-1" if category in ("pathological", "chemical", "pharmaceutical") or r.random() < 0.5 else "FAC-2"
        m = {"manifest_id": f"MF-{inst.id}-{datetime.fromtimestamp(t, TZ):%Y%m%d}-{category[:3].upper()}",
             "institution": inst, "category": category, "weight": weight, "containers": max(1, math.ceil(weight / 8)),
             "carrier": self.carrier_of[inst.id], "facility": facility, "generated": t,
             "handed": t + r.uniform(11, 15) * 3600, "received_weight": round(weight * r.uniform(0.99, 1.01), 1)}
        m["received"] = m["handed"] + r.uniform(0.5, 2.5) * 3600
        m["disposed"] = m["received"] + r.uniform(3, 10) * 3600
        for hook in self.manifest_hooks:
            m = hook(m, t) or m
        base = {"schema_version": 1, "manifest_id": m["manifest_id"], "institution_id": inst.id,
                "region": inst.district, "category": category, "weight_kg": weight, "container_count": m["containers"]}
        self.emit(t, "waste", m["manifest_id"], {**base, "event_type": "generated", "event_time": iso(t)})
        for step in ("handed", "received", "disposed"):
            at = m.get(step)
            if at is None:
                break
            kind = {"handed": "handed_over", "received": "received", "disposed": "disposed"}[step]
            event = {**base, "event_type": kind, "event_time": iso(at), "carrier_id": m["carrier"],
                     "facility_id": m["facility"]}
            if step != "handed":
                event["weight_kg"] = m["received_weight"]
            self.emit(at, "waste", m["manifest_id"], event)

    # --- cold chain ------------------------------------------------------------------------
    def _reading(self, t: float, device_id: str) -> Iterator[Event]:
        unit = self.units[device_id]
        d = unit.device
        local = datetime.fromtimestamp(t, TZ)
        working = local.weekday() < 5 and 8 <= local.hour < 17
        if d.kind == "vehicle":
            on_trip = local.weekday() < 5 and (9 <= local.hour < 12 or 14 <= local.hour < 16)
            if not on_trip:  # parked and switched off: resume at the next trip
                nxt = local.replace(minute=0, second=0) + timedelta(hours=1)
                self._call(nxt.timestamp() + zlib.crc32(device_id.encode()) % 60, self._reading, device_id)
                return
        self._call(t + d.interval_s, self._reading, device_id)
        silent = self.silent.get(device_id)
        if silent and silent[0] <= t < silent[1]:
            return
        r = self.rng_cold
        door = 0.0
        p_door = 0.25 if d.kind == "vehicle" else 0.12 if d.kind == "fridge" else 0.2
        if working and r.random() < p_door:
            door = r.uniform(0.4, 1.1)
        temp = unit.reading(t, door, r.gauss(0, 0.25 if d.rhythm == "noisy" else 0.08))
        f = unit.fault
        power = "off" if f is not None and f.kind == "power_loss" and f.start_t <= t < f.end_t else "mains"
        event = {"schema_version": 1, "device_id": d.id, "device_kind": d.kind, "facility_id": d.facility_id,
                 "region": d.district, "event_time": iso(t), "temperature_c": round(temp, 2),
                 "door_open": bool(door), "power": power, "battery_pct": 100 if power == "mains" else 80}
        yield "telemetry", d.id, event
