"""The protocol every rule-based detector follows.

A detector sees validated events of one stream, in partition order, and returns the
alerts they cause. It keeps whatever per-entity state it needs in memory; events of one
entity arrive on one partition because producers key records by that entity.
A detector must tolerate at-least-once redelivery: seeing an event again must not raise
a second, different alert (deterministic ids make a repeated alert harmless).
"""
from __future__ import annotations

from typing import Any, Protocol

from models.alert import Alert, Source


class Detector(Protocol):
    name: str
    version: str
    stream: str

    def process(self, event: dict[str, Any], source: Source) -> list[Alert]:
        """Consume one validated event; return the alerts it raises (often none)."""
        ...
