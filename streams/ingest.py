"""Ingestion of one Kafka record: raw bytes → orjson → schema check → pseudonymize → detectors.

This module has no Faust or Kafka import: the agent hands it a record's bytes and
coordinates, and gets back an explicit *ok* stream (alerts) and *error* stream (dead
letters), in the style of bytewax. Nothing a record contains can make it raise.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from models.alert import Alert, Source
from models.base import Detector
from models.contracts import InvalidRecord, decode, validate

log = logging.getLogger(__name__)


def _event_id(stream: str, e: dict[str, Any]) -> str:
    if stream == "prescription":
        return e["prescription_id"]
    if stream == "claim":
        return e["claim_id"]
    if stream == "waste":
        return f"{e['manifest_id']}/{e['event_type']}"
    return f"{e['device_id']}@{e['event_time']}"


@dataclass(slots=True)
class DeadLetter:
    """A refused record (or one refused event of an envelope), unchanged, with why."""

    value: bytes | None
    reason: str
    detail: str
    index: int | None = None  # position in the envelope, when only one event of it was refused

    def headers(self, topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
        h = [
            ("zhijian.error.topic", topic.encode()),
            ("zhijian.error.partition", str(partition).encode()),
            ("zhijian.error.offset", str(offset).encode()),
            ("zhijian.error.reason", self.reason.encode()),
            ("zhijian.error.message", self.detail[:1000].encode()),
        ]
        if self.index is not None:
            h.append(("zhijian.error.batch_index", str(self.index).encode()))
        return h


@dataclass(slots=True)
class Outcome:
    events: int = 0
    alerts: list[Alert] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)  # (kind, region) → valid events, for the metrics
    newest_t: float | None = None  # the latest event time among the valid events


class Ingest:
    """Turns the records of one stream's topic into alerts and dead letters."""

    def __init__(self, stream: str, detectors: list[Detector], pseudonymize: Callable[[str], str],
                 kind_field: str | None = None) -> None:
        self.stream = stream
        self.kind_field = kind_field
        self.detectors = detectors
        self.pseudonymize = pseudonymize
        self._has_patient = stream in ("prescription", "claim")

    def handle(self, raw: bytes | None, topic: str, partition: int, offset: int,
               record_time: float | None = None) -> Outcome:
        out = Outcome()
        try:
            events = decode(raw)
        except InvalidRecord as e:
            out.dead.append(DeadLetter(raw, e.reason, e.detail))
            return out
        whole = len(events) == 1
        for i, event in enumerate(events):
            try:
                validate(self.stream, event)
            except InvalidRecord as e:
                value = raw if whole else orjson.dumps(event)
                out.dead.append(DeadLetter(value, e.reason, e.detail, None if whole else i))
                continue
            if self._has_patient:
                event["patient"] = self.pseudonymize(event.pop("patient_id"))
            out.events += 1
            out.kinds[(event.get(self.kind_field) if self.kind_field else None, event.get("region"))] += 1
            t = event.get("_t")
            if t is not None and (out.newest_t is None or t > out.newest_t):
                out.newest_t = t
            source = Source(topic, partition, offset, _event_id(self.stream, event), record_time)
            for detector in self.detectors:
                try:
                    out.alerts.extend(detector.process(event, source))
                except Exception as e:  # a detector bug must not stop the stream
                    log.exception("detector %s failed on %s offset %d", detector.name, topic, offset)
                    out.dead.append(DeadLetter(raw if whole else orjson.dumps(event), "detector_error",
                                               f"{detector.name}: {type(e).__name__}", None if whole else i))
                failures = getattr(detector, "failures", None)  # a runtime of keyed detectors carries on
                while failures:
                    f = failures.pop(0)
                    log.error("detector %s failed on %s offset %d: %s", f.detector, topic, offset, f)
                    out.dead.append(DeadLetter(raw if whole else orjson.dumps(event), "detector_error",
                                               f"{f.detector}: {type(f.error).__name__}", None if whole else i))
        return out
