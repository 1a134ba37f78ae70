"""Every detector written to the keyed contract passes the conformance checks (models/engine/conformance.py)
on a simulated region with its risk scenarios planted: repeated events, snapshot → restore
mid-stream, and a split by key over partitions each give exactly the alerts of one plain run."""
from __future__ import annotations

from functools import cache

import pytest

from streams.lab.simulator import RegionSimulator, SimulationConfig
from streams.lab.simulator.scenarios import BY_NAME
from connectors.kafka.topics import topic_specs
from models.engine import conformance as checks
from models.rules import registry
from models.contracts.alert import Source
from models.contracts.records import validate
from models.engine.detector import KeyedDetector
from streams.settings import load_settings

#: Patterns that take weeks to show (a readmission is billed at discharge): straight to their own stream.
SLOW = {"claim.split_admission"}
KEYED = [cls for cls in registry.detector_classes() if issubclass(cls, KeyedDetector)]


@cache
def stream_events(stream: str, scenarios: tuple[str, ...] | None = None, days: float = 4) -> tuple:
    """Simulated days of one stream (every scenario, or only some), validated as the worker would."""
    topic = {s.stream: s.name for s in topic_specs() if s.stream}[stream]
    sim = RegionSimulator(SimulationConfig(seed=17, days=days, scale=0.4, scenario_rate=8, warmup_days=0.3,
                                           scenarios=scenarios))
    out = []
    for offset, (s, key, event) in enumerate(sim.until(sim.t0 + days * 86400)):
        if s != stream:
            continue
        event = validate(stream, event)
        if "patient_id" in event:
            event["patient"] = "P" + event.pop("patient_id")
        out.append((event, Source(topic, 0, offset, key)))
    return tuple(out)


@cache
def beneficiaries() -> dict:
    """The simulated region's beneficiary table, under the pseudonyms ``stream_events`` gives (the reference data
    the death, age and sex rules look up)."""
    sim = RegionSimulator(SimulationConfig(seed=17, scale=0.4, scenarios=()))
    return {"beneficiary": {"P" + b["patient_id"]: {k: b[k] for k in ("birth_date", "sex", "death_date") if k in b}
                            for b in sim.beneficiaries()}}


#: The field each stream's topic is partitioned by (after pseudonymization).
PARTITION_FIELD = {"prescription": "patient", "claim": "patient", "waste": "manifest_id", "telemetry": "device_id"}


def test_every_detector_follows_the_contract():
    assert KEYED == list(registry.detector_classes()) and len(KEYED) == 27
    rekeyed = {c.name: c.key for c in KEYED if registry.rekeyed(c)}
    assert rekeyed == {"prescription.excess_usage": "prescriber", "claim.card_misuse": "institution",
                       "claim.entity_anomaly": "institution", "claim.impossible_day": "doctor",
                       "waste.generation_anomaly": "institution"}


@pytest.mark.parametrize("cls", KEYED, ids=lambda c: c.name)
def test_conformance(cls):
    settings = load_settings([str(__import__("streams.lab.simulator", fromlist=["REGION_CONFIG"]).REGION_CONFIG)],
                             environ={})
    limits = settings.detectors[cls.name]
    events = list(stream_events(cls.stream))
    tables = beneficiaries() if cls.stream == "claim" else {}
    if cls.name in ("claim.excluded_provider", "prescription.excluded_prescriber"):
        # the watch list names the doctor of one event in fifty, excluded (the reference data these rules read)
        who = "doctor_id" if cls.stream == "claim" else "prescriber_id"
        kind = "doctor" if cls.stream == "claim" else "prescriber"
        listed = {f"{kind}:{e[who]}": {"list": "excluded"} for e, _ in events[::50]}
        tables = {**tables, "watchlist": listed}
    if cls.name in SLOW or not checks.reference(lambda: cls(limits), events, tables):
        # a rare or slow pattern (a readmission is billed at its discharge): three weeks of only the scenarios
        # planted for this detector
        planted = tuple(n for n, sc in BY_NAME.items() if cls.name in sc.detectors)
        events = list(stream_events(cls.stream, planted, 21))
    field = PARTITION_FIELD[cls.stream]
    source_key = (lambda e: str(e[field])) if registry.rekeyed(cls) else None
    raised = checks.check_all(lambda: cls(limits), events, source_key, tables)
    assert raised > 0, f"{cls.name} raised nothing on the simulated region: the checks proved little"
