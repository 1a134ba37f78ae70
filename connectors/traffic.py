"""A simple traffic generator for all four streams, with a few injected risks.

Deterministic under a seed, on a simulated clock that runs ``speed`` times faster than
real time (so a 48-hour storage limit or a 10-hour excursion shows up within a demo).
It produces micro-batch envelopes — one Kafka record carrying the events of one
partition — exactly as an outside producer may. The realistic region simulator with
labelled scenarios is a separate, larger piece of work.
"""
from __future__ import annotations

import heapq
import math
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from connectors.topics import KEY_FIELD

TZ = timezone(timedelta(hours=8))  # China Standard Time

DRUGS = [  # (code, ATC, name, unit, unit price)
    ("X-J01CA04", "J01CA04", "amoxicillin 0.25 g", "capsule", 0.6),
    ("X-J01DC02", "J01DC02", "cefuroxime 0.25 g", "tablet", 2.1),
    ("X-C09AA05", "C09AA05", "ramipril 5 mg", "tablet", 1.2),
    ("X-A10BA02", "A10BA02", "metformin 0.5 g", "tablet", 0.3),
    ("X-M01AE01", "M01AE01", "ibuprofen 0.2 g", "tablet", 0.2),
    ("X-R05CB01", "R05CB01", "acetylcysteine 0.2 g", "sachet", 1.5),
]
CLAIM_ITEMS = [  # (code, category, unit price)
    ("CT-HEAD", "exam", 300.0), ("CBC", "lab", 25.0), ("ECG", "exam", 40.0), ("CONSULT", "treatment", 15.0),
    ("XRAY-CHEST", "exam", 90.0), ("GLUCOSE", "lab", 12.0), ("IV-DRIP", "treatment", 30.0),
]
WASTE_CATEGORIES = ["infectious", "infectious", "infectious", "sharps", "pathological", "pharmaceutical", "chemical"]


@dataclass
class TrafficConfig:
    seed: int = 7
    institutions: int = 12
    devices: int = 24
    speed: float = 3600.0  # simulated seconds per real second
    prescriptions_per_sim_hour: float = 240.0
    claims_per_sim_hour: float = 240.0
    reading_interval_s: float = 300.0
    over_supply_rate: float = 0.003
    duplicate_charge_rate: float = 0.005
    late_handover_rate: float = 0.05
    excursion_rate_per_device_day: float = 0.5


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, TZ).isoformat(timespec="seconds")


class Traffic:
    """Iterates (stream, key, event) in simulated-time order, forever."""

    def __init__(self, config: TrafficConfig, start: datetime) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.t0 = start.timestamp()
        self.now = self.t0
        n = config.institutions
        self.institutions = [(f"H{i:03d}", f"3101{i % 6:02d}") for i in range(n)]
        self.prescribers = {h: [f"{h}-D{j:02d}" for j in range(6)] for h, _ in self.institutions}
        self.patients = [f"ID-{self.rng.randrange(10**11, 10**12)}" for _ in range(100000)]
        self.devices = [(f"FR-{i:03d}", "fridge" if i % 4 else "cold_room", self.institutions[i % n])
                        for i in range(config.devices)]
        self._phase = {d[0]: self.rng.random() * 2 * math.pi for d in self.devices}
        self._fault: dict[str, tuple[float, float, float]] = {}  # device → (start, end, target temp)
        self._queue: list[tuple[float, int, str, str, dict[str, Any]]] = []
        self._seq = 0
        self._counter = defaultdict(int)
        for i, (dev, _, _) in enumerate(self.devices):
            self._push(self.t0 + i * config.reading_interval_s / len(self.devices), "_reading", dev, {})
        self._push(self.t0, "_rx", "", {})
        self._push(self.t0, "_claim", "", {})
        for i, (h, _) in enumerate(self.institutions):
            self._push(self.t0 + i * 600, "_waste", h, {})

    def _push(self, t: float, kind: str, key: str, event: dict[str, Any]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (t, self._seq, kind, key, event))

    def _id(self, prefix: str) -> str:
        self._counter[prefix] += 1
        return f"{prefix}{self.cfg.seed:02d}{self._counter[prefix]:08d}"

    def until(self, t_end: float) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """Every event with simulated time ≤ t_end, in time order."""
        while self._queue and self._queue[0][0] <= t_end:
            t, _, kind, key, event = heapq.heappop(self._queue)
            self.now = t
            if kind.startswith("_"):
                yield from getattr(self, kind)(t, key)
            else:
                yield kind, key, event

    # --- generators of each stream -------------------------------------------------------
    def _rx(self, t: float, _: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        r = self.rng
        self._push(t + r.expovariate(self.cfg.prescriptions_per_sim_hour / 3600), "_rx", "", {})
        h, region = r.choice(self.institutions)
        visit = r.choices(["outpatient", "emergency", "inpatient", "long_term"], [70, 10, 10, 10])[0]
        limit = {"outpatient": 7, "emergency": 3, "inpatient": 3, "long_term": 28}[visit]
        items = []
        for code, atc, name, unit, price in r.sample(DRUGS, r.randint(1, 3)):
            days = r.randint(1, limit)
            if r.random() < self.cfg.over_supply_rate:
                days = limit + r.randint(3, 20)
            qty = days * r.choice([1, 2, 3])
            items.append({"drug_code": code, "atc_code": atc, "name": name, "quantity": qty, "unit": unit,
                          "days_supply": days, "amount": round(qty * price, 2), "controlled_class": "none"})
        patient = r.choice(self.patients)
        yield "prescription", patient, {
            "schema_version": 1, "prescription_id": self._id("RX"), "event_time": _iso(t),
            "institution_id": h, "region": region, "department": r.choice(["IM", "PED", "ER", "SURG"]),
            "prescriber_id": r.choice(self.prescribers[h]), "patient_id": patient, "visit_type": visit,
            "items": items, "diagnoses": [r.choice(["J06.9", "I10", "E11.9", "M54.5"])],
        }

    def _claim(self, t: float, _: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        r = self.rng
        self._push(t + r.expovariate(self.cfg.claims_per_sim_hour / 3600), "_claim", "", {})
        h, region = r.choice(self.institutions)
        patient = r.choice(self.patients)
        lines = []
        for code, cat, price in r.sample(CLAIM_ITEMS, r.randint(1, 4)):
            qty = 1
            lines.append({"item_code": code, "category": cat, "quantity": qty, "unit_price": price,
                          "amount": price * qty})
        claim = self._claim_event(t, h, region, patient, lines)
        yield "claim", patient, claim
        if r.random() < self.cfg.duplicate_charge_rate:  # the same items billed again later that day
            later = min(t + r.uniform(600, 7200), self._end_of_day(t))
            self._push(later, "claim", patient, self._claim_event(later, h, region, patient, lines[:1]))

    def _claim_event(self, t: float, h: str, region: str, patient: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
        total = round(sum(x["amount"] for x in lines), 2)
        return {"schema_version": 1, "claim_id": self._id("CL"), "event_time": _iso(t), "institution_id": h,
                "region": region, "doctor_id": self.rng.choice(self.prescribers[h]), "patient_id": patient,
                "claim_type": "outpatient", "diagnoses": ["J06.9"], "items": [dict(x) for x in lines],
                "total_amount": total, "fund_paid": round(total * 0.7, 2), "settlement_site": h}

    @staticmethod
    def _end_of_day(t: float) -> float:
        d = datetime.fromtimestamp(t, TZ)
        return (d.replace(hour=23, minute=59, second=0)).timestamp()

    def _waste(self, t: float, h: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        r = self.rng
        self._push(t + r.uniform(4, 8) * 3600, "_waste", h, {})
        region = dict(self.institutions)[h]
        manifest = self._id("MF")
        base = {"schema_version": 1, "manifest_id": manifest, "institution_id": h, "region": region,
                "category": r.choice(WASTE_CATEGORIES), "weight_kg": round(r.uniform(2, 40), 1),
                "container_count": r.randint(1, 6)}
        yield "waste", manifest, {**base, "event_type": "generated", "event_time": _iso(t)}
        hold = r.uniform(50, 60) if r.random() < self.cfg.late_handover_rate else r.uniform(4, 30)
        handed = t + hold * 3600
        carrier, facility = f"CR-{r.randint(1, 3)}", f"FAC-{r.randint(1, 2)}"
        for kind, at in (("handed_over", handed), ("received", handed + r.uniform(1, 5) * 3600),
                         ("disposed", handed + r.uniform(6, 20) * 3600)):
            self._push(at, "waste", manifest, {**base, "event_type": kind, "event_time": _iso(at),
                                               "carrier_id": carrier, "facility_id": facility})

    def _reading(self, t: float, dev: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        r = self.rng
        self._push(t + self.cfg.reading_interval_s, "_reading", dev, {})
        kind, (h, region) = next((k, inst) for d, k, inst in self.devices if d == dev)
        p_fault = self.cfg.excursion_rate_per_device_day * self.cfg.reading_interval_s / 86400
        fault = self._fault.get(dev)
        if fault and t > fault[1]:
            del self._fault[dev]
            fault = None
        if fault is None and r.random() < p_fault:
            heat = r.random() < 0.75
            hours = r.uniform(0.5, 12) if heat else r.uniform(0.5, 3)
            fault = self._fault[dev] = (t, t + hours * 3600, r.uniform(9, 14) if heat else r.uniform(-3, -1))
        temp = 5.0 + 1.2 * math.sin(self._phase[dev] + t / 1800.0) + r.gauss(0, 0.15)
        if fault:
            ramp = min(1.0, (t - fault[0]) / 1800.0)
            temp = temp + (fault[2] - temp) * ramp
        yield "telemetry", dev, {"schema_version": 1, "device_id": dev, "device_kind": kind,
                                 "facility_id": h, "region": region, "event_time": _iso(t),
                                 "temperature_c": round(temp, 2), "door_open": False, "power": "mains"}


def key_of(stream: str, event: dict[str, Any]) -> str:
    return str(event[KEY_FIELD[stream]])
