"""Every detector passes the conformance checks (models/engine/conformance.py) on a simulated region with its risk
scenarios planted: repeated events, snapshot → restore mid-stream, a split by key over partitions, re-keying
through envelopes when its key is not its stream's, and no free text in an alert, each give exactly the alerts of
one plain run. The suite finds the detectors in the registry and runs each as its ``_conformance_params`` ask."""
from __future__ import annotations

import dataclasses
from datetime import datetime
from functools import cache

import pytest

from connectors.kafka.topics import topic_specs
from models.contracts.alert import Source
from models.contracts.records import event_id, validate
from models.engine import conformance
from models.engine.detector import KeyedDetector
from models.rules import registry
from streams.lab.simulator import REGION_CONFIG, RegionSimulator, SimulationConfig, build_region
from streams.lab.simulator.catalogue import TZ
from streams.lab.simulator.region import registry_sections
from streams.lab.simulator.scenarios import BY_NAME
from streams.settings import load_settings

DETECTORS = registry.detector_classes()


@cache
def stream_events(stream: str, scenarios: tuple[str, ...] | None = None, days: float = 4, scale: float = 0.4,
                  start: str = "") -> tuple:
    """Simulated days of one stream (every scenario, or only some), validated as the worker would."""
    topic = {s.stream: s.name for s in topic_specs() if s.stream}[stream]
    when = {"start": datetime.fromisoformat(start).replace(tzinfo=TZ)} if start else {}
    sim = RegionSimulator(SimulationConfig(seed=17, days=days, scale=scale, scenario_rate=8, warmup_days=0.3,
                                           scenarios=scenarios, **when))
    out = []
    for offset, (s, key, event) in enumerate(sim.until(sim.t0 + days * 86400)):
        if s != stream:
            continue
        event = validate(stream, event)
        if "patient_id" in event:
            event["patient"] = "P" + event.pop("patient_id")
        out.append((event, Source(topic, 0, offset, event_id(stream, event))))
    return tuple(out)


@cache
def beneficiaries() -> dict:
    """The simulated region's beneficiary table, under the pseudonyms ``stream_events`` gives (the reference data
    the death, age and sex rules look up)."""
    sim = RegionSimulator(SimulationConfig(seed=17, scale=0.4, scenarios=()))
    return {"beneficiary": {"P" + b["patient_id"]: {k: b[k] for k in ("birth_date", "sex", "death_date") if k in b}
                            for b in sim.beneficiaries()}}


def test_every_detector_follows_the_one_contract():
    assert all(issubclass(c, KeyedDetector) for c in DETECTORS) and len(DETECTORS) == 39
    rekeyed = {c.name: c.key for c in DETECTORS if registry.rekeyed(c)}
    assert rekeyed == {"prescription.excess_usage": "prescriber", "claim.card_misuse": "institution",
                       "claim.entity_anomaly": "institution", "claim.impossible_day": "doctor",
                       "claim.group_visits": "institution", "prescription.double_ranking": "institution",
                       "waste.generation_anomaly": "institution", "waste.category_mix": "institution",
                       "prescription.drug_usage": "institution", "claim.antimicrobial_stewardship": "institution",
                       "waste.generation_per_bed": "peer_group", "prescription.antimicrobial_departments": "institution",
                       "prescription.department_usage": "department", "claim.consumable_usage": "department"}
    assert all(conformance.params_of(c) is not None for c in DETECTORS)  # every declaration is a known parameter


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda c: c.name)
def test_conformance(cls):
    params = conformance.params_of(cls)
    beds = registry_sections(build_region(17, params.scale)).get(cls.name, {})  # the run's beds and kinds
    limits = dataclasses.replace(load_settings([str(REGION_CONFIG)], environ={}).detectors[cls.name],
                                 **{**beds, **params.limits})
    planted = tuple(n for n, sc in BY_NAME.items() if cls.name in sc.detectors) if params.own_scenarios else None
    events = list(stream_events(cls.stream, planted, params.days, params.scale, params.start))
    tables = params.tables(events, beneficiaries() if cls.stream == "claim" else conformance.EMPTY)
    source_key = registry.partition_key(cls.stream) if registry.rekeyed(cls) else None
    raised = conformance.check_all(lambda: cls(limits), events, source_key, tables)
    assert raised > 0, f"{cls.name} raised nothing on the simulated region: the checks proved little"
