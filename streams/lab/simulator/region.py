"""The simulated region: institutions of several kinds, their prescribers and beds, patients with
chronic conditions, vaccine fridges, cold rooms and vehicles, waste carriers and disposal facilities.

Everything is drawn from one seeded random generator, so a seed names a region.

>>> r = build_region(7, scale=1.0)
>>> sorted({i.kind for i in r.institutions})
['cdc_store', 'community', 'pharmacy', 'private_clinic', 'secondary', 'tertiary']
>>> build_region(7, 1.0).patients[0] == r.patients[0]
True
"""
from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from typing import Any

#: kind → (count at scale 1, beds range, prescribers range, outpatient visits a weekday range)
KINDS = {
    "tertiary": (2, (800, 1500), (40, 60), (2500, 4000)),
    "secondary": (3, (250, 500), (15, 25), (800, 1500)),
    "community": (6, (20, 60), (5, 9), (150, 300)),
    "private_clinic": (5, (0, 0), (2, 4), (30, 80)),
    "pharmacy": (6, (0, 0), (2, 3), (80, 200)),
    "cdc_store": (2, (0, 0), (0, 0), (0, 0)),
}
DEPARTMENTS = {
    "tertiary": ("IM", "SURG", "PED", "ER", "ONC", "RESP", "CARD", "NEPH"),
    "secondary": ("IM", "SURG", "PED", "ER", "RESP"),
    "community": ("GP", "TCM"),
    "private_clinic": ("GP",),
    "pharmacy": ("RX",),
    "cdc_store": (),
}
#: hospital → the pharmacy at its gate (region.toml's [claim.two_places] travel_minutes, 5 minutes' walk)
GATE_PHARMACY = {"H301": "P01", "H201": "P02", "H302": "P03", "H202": "P04", "H203": "P05", "H303": "P06"}
DISTRICTS = ("310101", "310104", "310105", "310106", "310107", "310109", "310110")
CONDITIONS = {"hypertension": ("I10", 0.22), "diabetes": ("E11.9", 0.09), "hyperlipidaemia": ("E78.5", 0.08),
              "asthma": ("J45.9", 0.03)}


@dataclass
class Institution:
    id: str
    kind: str
    district: str
    beds: int
    departments: tuple[str, ...]
    prescribers: list[str]
    weekday_visits: float
    prescriber_dept: dict[str, str] = field(default_factory=dict)

    @property
    def inpatient(self) -> bool:
        return self.beds > 0


@dataclass
class Patient:
    id: str  # a national-id-like identifier: pseudonymized by the worker at ingestion
    age: int
    sex: str
    district: str
    conditions: tuple[str, ...]


@dataclass
class Device:
    id: str
    kind: str  # fridge | cold_room | vehicle
    facility_id: str
    district: str
    interval_s: float  # reporting interval
    cycle_s: float  # compressor cycle period
    amplitude: float  # half the compressor swing, °C
    setpoint: float
    phase: float
    #: the unit's daily rhythm in normal operation (:data:`RHYTHMS`): none, a warm afternoon, clinic hours, noise,
    #: a defrost timer — benign look-alikes of a drifting unit, each device's by its id
    rhythm: str = "none"


#: Daily rhythms of normal operation (合理情形 for the dynamics rule): what the unit's temperature does each day.
RHYTHMS = ("none", "afternoon", "clinic_hours", "noisy", "defrost_timer", "none")


def rhythm_of(device_id: str) -> str:
    """A device's rhythm, from its id (no draw from the region's random source: the rest of the region stays as
    it was)."""
    return RHYTHMS[zlib.crc32(f"rhythm/{device_id}".encode()) % len(RHYTHMS)]


@dataclass
class Region:
    seed: int
    institutions: list[Institution]
    patients: list[Patient]
    devices: list[Device]
    carriers: tuple[str, ...]
    #: disposal facility → the waste categories its licence covers (经营许可证)
    facilities: dict[str, tuple[str, ...]]

    def of_kind(self, *kinds: str) -> list[Institution]:
        return [i for i in self.institutions if i.kind in kinds]

    @property
    def by_id(self) -> dict[str, Institution]:
        return {i.id: i for i in self.institutions}

    @property
    def gate_pharmacy(self) -> dict[str, str]:
        """Hospital → the pharmacy at its gate (院外药房, a few minutes' walk), those of this region's size: the
        region's ``[claim.two_places] travel_minutes`` lists them (region.toml)."""
        ids = self.by_id
        return {h: p for h, p in GATE_PHARMACY.items() if h in ids and p in ids}


def _national_id(rng: random.Random, district: str, age: int, sex: str) -> str:
    year = 2026 - age
    body = f"{district}{year:04d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randint(0, 99):02d}"
    body += str(rng.randrange(1, 10, 2) if sex == "M" else rng.randrange(0, 10, 2))
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, weights)) % 11]  # GB 11643 check digit
    return body + check


def registry_sections(region: Region) -> dict[str, dict[str, Any]]:
    """The region's institution registry (医疗机构执业登记: kinds and beds) as the configuration a real region gives
    zhijian: beds vary with the seed, so the lab writes it for each simulated region (``registry_toml``)."""
    with_beds = [i for i in region.institutions if i.beds]
    return {"waste.generation_per_bed": {"beds": {i.id: i.beds for i in with_beds},
                                         "peer_groups": {i.id: i.kind for i in with_beds}}}


def registry_toml(region: Region) -> str:
    """:func:`registry_sections` as a TOML file.

    >>> print(registry_toml(build_region(7, 0.2)).splitlines()[3][:60])
    beds = { H301 = 1154, H201 = 366, C01 = 22 }
    """
    lines = [f"# the simulated region's institution registry (seed {region.seed}), written by the lab", ""]
    for section, values in registry_sections(region).items():
        lines.append(f"[{section}]")
        for name, table in values.items():
            cells = ", ".join(f"{k} = {v!r}" if isinstance(v, int) else f'{k} = "{v}"' for k, v in table.items())
            lines.append(f"{name} = {{ {cells} }}")
    return "\n".join(lines) + "\n"


def build_region(seed: int, scale: float = 1.0, patients_per_scale: int = 40_000) -> Region:
    """A region of ``scale`` × the default institution counts (at least one of each kind)."""
    rng = random.Random(f"region-{seed}")
    institutions: list[Institution] = []
    prefix = {"tertiary": "H3", "secondary": "H2", "community": "C", "private_clinic": "K", "pharmacy": "P",
              "cdc_store": "CDC"}
    for kind, (count, beds, staff, visits) in KINDS.items():
        for n in range(max(1, round(count * scale))):
            iid = f"{prefix[kind]}{n + 1:02d}"
            depts = DEPARTMENTS[kind]
            prescribers = [f"{iid}-D{j + 1:02d}" for j in range(rng.randint(*staff))]
            inst = Institution(iid, kind, rng.choice(DISTRICTS), rng.randint(*beds), depts, prescribers,
                               rng.uniform(*visits))
            inst.prescriber_dept = {p: depts[j % len(depts)] for j, p in enumerate(prescribers)} if depts else {}
            institutions.append(inst)
    patients = []
    for _ in range(int(patients_per_scale * scale)):
        age = min(95, max(0, int(rng.gauss(45, 22))))
        sex = rng.choice("MF")
        district = rng.choice(DISTRICTS)
        risk = 0.3 + age / 60
        conditions = tuple(c for c, (_, p) in CONDITIONS.items() if rng.random() < p * risk)
        patients.append(Patient(_national_id(rng, district, age, sex), age, sex, district, conditions))
    devices: list[Device] = []
    for inst in institutions:
        if inst.kind == "cdc_store":
            layout = [("cold_room", 2), ("fridge", 4), ("vehicle", 2)]
        elif inst.kind in ("tertiary", "secondary", "community"):
            layout = [("fridge", 2 if inst.kind == "tertiary" else 1)]
        else:
            continue
        for kind, count in layout:
            for _ in range(count):
                did = f"{'FR' if kind == 'fridge' else 'CR' if kind == 'cold_room' else 'VH'}-{inst.id}-{len(devices) + 1:03d}"
                devices.append(Device(
                    did, kind, inst.id, inst.district,
                    interval_s=120.0 if kind == "vehicle" else 300.0,
                    cycle_s=rng.uniform(1800, 3000) if kind == "fridge" else rng.uniform(900, 1500),
                    amplitude=rng.uniform(0.8, 1.2) if kind == "fridge" else rng.uniform(0.5, 0.8),
                    setpoint=rng.uniform(4.6, 5.2), phase=rng.random(), rhythm=rhythm_of(did) if kind == "fridge" else "none"))
    facilities = {"FAC-1": ("infectious", "sharps", "pathological", "pharmaceutical", "chemical"),
                  "FAC-2": ("infectious", "sharps")}
    return Region(seed, institutions, patients, devices, ("CR-1", "CR-2", "CR-3"), facilities)
