"""Rules run in-process over a simulated region and scored against its ground truth: what the catalogue tests of
claims, prescriptions and waste share (the region's own configuration, its registry of beds and kinds)."""
from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Callable

from models.contracts.alert import Alert, Source
from models.contracts.records import event_id
from models.engine.runtime import Runtime
from models.rules import registry
from streams.lab.evaluate import incidents_from_truth
from streams.lab.scoring import Report, score
from streams.lab.simulator import REGION_CONFIG
from streams.lab.simulator.region import registry_sections
from streams.settings import load_settings


def run_rules(sim: Any, stream: str, rules: tuple[str, ...], days: float) -> tuple[dict[str, Alert], dict, int]:
    """Every event of ``stream`` through a runtime of ``rules`` as the worker would hand it (the patient's field
    named ``patient``): the alerts by id in their last state, the events by id, and how many there were."""
    config = load_settings([str(REGION_CONFIG)], environ={}).detectors
    beds = registry_sections(sim.region)
    rt = Runtime([cls(dataclasses.replace(config[cls.name], **beds.get(cls.name, {})))
                  for cls in registry.detector_classes() if cls.name in rules])
    topic = f"zhijian.{stream}"
    alerts: dict[str, Alert] = {}
    events: dict[str, dict] = {}
    n = 0
    for s, _, e in sim.until(sim.t0 + days * 86400):
        if s != stream:
            continue
        n += 1
        eid = event_id(stream, e)
        events[eid] = e
        event = {**e, "_t": datetime.fromisoformat(e["event_time"]).timestamp()}
        if "patient_id" in e:
            event["patient"] = e["patient_id"]
        for a in rt.process(event, Source(topic, 0, n, eid)):
            alerts[a.alert_id] = a
    return alerts, events, n


def scored(sim: Any, alerts: dict[str, Alert], rules: tuple[str, ...], events: int, days: float,
           incident: Callable[[dict], bool] = lambda x: True) -> Report:
    """The open alerts scored against the incidents of ``rules`` (those ``incident`` keeps)."""
    truth = incidents_from_truth([x for x in sim.truth if set(x["detectors"]) & set(rules) and incident(x)],
                                 lambda ident: ident)  # the events here carry the patient ids as they are
    return score(truth, [{"detector": a.detector, "entity": {"kind": a.entity_kind, "id": a.entity_id},
                          "t": a.event_t} for a in alerts.values() if a.status == "open"], events=events,
                 until=sim.t0 + days * 86400)
