"""Alerts (预警) and the provenance they rest on.

An alert's id is a UUIDv5 over the detector, its version, the entity and a key naming
the source events, so replaying the same input yields the same ids and downstream
consumers can de-duplicate after an at-least-once redelivery.

>>> src = Source("zhijian.telemetry", 0, 42, "F1@2026-01-01T00:00:00+00:00")
>>> a = Alert.build(
...     detector="coldchain.excursion", version="1", stream="telemetry", severity="medium",
...     tier="safety", entity_kind="device", entity_id="F1", institution_id="CDC-1", region="310101",
...     event_t=1767225600.0, key="F1@1767225600", score=1.5, reason="9.0 °C above 8.0 °C",
...     numbers={"temperature_c": 9.0}, evidence=[src])
>>> a.alert_id
'eae487da-3884-5c7e-8f57-25bdcb6dda52'
>>> a.alert_id == alert_id("coldchain.excursion", "1", "device", "F1", "F1@1767225600")
True
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

import orjson

#: Namespace of zhijian alert ids (a fixed random UUID; never change it).
ALERT_NAMESPACE = uuid.UUID("7d1c3f4e-58a2-4c0b-9a57-0f3b2b6c9e11")


class Source(NamedTuple):
    """Where an event came from: enough for an analyst to fetch the original record."""

    topic: str
    partition: int
    offset: int
    event_id: str
    record_time: float | None = None  # Kafka record timestamp, epoch seconds

    def as_evidence(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "event_id": self.event_id,
            "record_time": self.record_time,
        }


#: The money an alert names is the first of these numbers it carries above zero (yuan): the duplicated or
#: overcharged part where the rule knows it, else the claims' total.
AMOUNT_KEYS = ("duplicate_amount", "overcharge", "amount_at_risk", "total_amount", "amount")


def money_named(numbers: dict[str, Any]) -> float:
    """The money an alert's numbers name (0.0 when none).

    >>> money_named({"duplicate_amount": 120.5, "lines": 3}), money_named({"peak_c": 9.1})
    (120.5, 0.0)
    """
    for key in AMOUNT_KEYS:
        value = numbers.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return 0.0


def alert_id(detector: str, version: str, entity_kind: str, entity_id: str, key: str) -> str:
    """Deterministic alert id: UUIDv5 over detector, version, entity and source key."""
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{detector}|{version}|{entity_kind}:{entity_id}|{key}"))


def iso(t: float) -> str:
    """Epoch seconds → ISO 8601 UTC with seconds precision."""
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds")


@dataclass(slots=True)
class Alert:
    alert_id: str
    detector: str
    detector_version: str
    stream: str
    severity: str
    tier: str
    entity_kind: str
    entity_id: str
    institution_id: str
    region: str
    event_t: float
    score: float
    reason: str
    numbers: dict[str, Any]
    evidence: list[Source]
    status: str = "open"
    detected_t: float = field(default_factory=time.time)
    pseudonym_key_id: str | None = None  # set by the worker: the key behind every patient pseudonym in it

    @classmethod
    def build(cls, *, detector: str, version: str, entity_kind: str, entity_id: str, key: str,
              **fields: Any) -> "Alert":
        return cls(
            alert_id=alert_id(detector, version, entity_kind, entity_id, key),
            detector=detector,
            detector_version=version,
            entity_kind=entity_kind,
            entity_id=entity_id,
            **fields,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "alert_id": self.alert_id,
            "detector": self.detector,
            "detector_version": self.detector_version,
            "stream": self.stream,
            "severity": self.severity,
            "tier": self.tier,
            "status": self.status,
            "entity": {"kind": self.entity_kind, "id": self.entity_id},
            "institution_id": self.institution_id,
            "region": self.region,
            "event_time": iso(self.event_t),
            "detected_at": datetime.fromtimestamp(self.detected_t, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "score": round(self.score, 4),
            "reason": self.reason,
            "numbers": self.numbers,
            "evidence": [s.as_evidence() for s in self.evidence],
            **({"pseudonym_key_id": self.pseudonym_key_id} if self.pseudonym_key_id else {}),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @property
    def key(self) -> bytes:
        """Kafka key of the alert record: the entity, so one entity's alerts stay in order."""
        return f"{self.entity_kind}:{self.entity_id}".encode()
