"""What the worker reports to Prometheus about the records it judged and the alerts it raised.

No Faust or Kafka here: the agent hands each record's outcome and each alert to an
:class:`Observer`, which keeps the few things a dashboard needs beyond plain counters —
alerts that are still open (an excursion, a silent logger) and how old the oldest is in event
time — and bounds every label: stream, detector, severity, tier, the contracts' enumerations,
and region codes up to a cap. Never an institution, a prescriber, a device or a patient.

>>> from models.contracts.alert import Alert, money_named
>>> o = Observer()
>>> def excursion(status, t):
...     return Alert.build(detector="coldchain.excursion", version="1", stream="telemetry", severity="high",
...                        tier="safety", entity_kind="device", entity_id="F1", institution_id="C", region="310101",
...                        event_t=t, key="F1@0", score=1.0, reason="", numbers={}, evidence=[], status=status)
>>> o.alert(excursion("open", 1000.0)); o.event_time("telemetry", 4600.0)
>>> o.open_summary()["coldchain.excursion"]
(1, 3600.0)
>>> o.alert(excursion("closed", 1000.0)); o.open_summary()["coldchain.excursion"]
(0, 0.0)
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any

from models.contracts.alert import Alert, money_named
from streams.worker import metrics

#: Detectors whose alerts open and later close under the same id.
LIFECYCLE = ("coldchain.excursion", "coldchain.sensor_silent")
#: The field whose (enumerated) value is an event's kind, per stream.
KIND_FIELD = {"prescription": "visit_type", "claim": "claim_type", "waste": "event_type", "telemetry": "device_kind"}


class Observer:
    def __init__(self, max_regions: int = 2000, max_open: int = 100_000, remember: int = 200_000) -> None:
        self.max_regions = max_regions
        self.max_open = max_open
        self.remember = remember  # alert ids counted lately: a record repeated (same id) is not counted twice
        self._counted: OrderedDict[str, None] = OrderedDict()
        self._regions: set[str] = set()
        self._open: dict[str, dict[str, float]] = {d: {} for d in LIFECYCLE}
        self._newest: dict[str, float] = {}
        self._stream_of = {d: "telemetry" for d in LIFECYCLE}

    # -- events

    def event_time(self, stream: str, t: float) -> None:
        if t > self._newest.get(stream, float("-inf")):
            self._newest[stream] = t

    def events(self, stream: str, kinds: Counter[tuple[Any, Any]]) -> None:
        """Count valid events by (kind, region), as :class:`streams.worker.ingest.Outcome` tallies them."""
        for (kind, region), n in kinds.items():
            metrics.KINDS.labels(stream, str(kind)).inc(n)
            metrics.REGIONS.labels(stream, self._region_label(region)).inc(n)

    def _region_label(self, region: Any) -> str:
        region = str(region) if region else "unknown"
        if region in self._regions:
            return region
        if len(self._regions) < self.max_regions:
            self._regions.add(region)
            return region
        return "other"

    # -- alerts

    def alert(self, alert: Alert) -> None:
        if alert.detector in self._open:
            opened = self._open[alert.detector]
            if alert.status == "open" and len(opened) < self.max_open:
                opened[alert.alert_id] = alert.event_t
            elif alert.status != "open":
                opened.pop(alert.alert_id, None)
        if alert.status != "open":
            return
        if alert.alert_id in self._counted:
            metrics.ALERTS_REPEATED.labels(alert.stream).inc()
            return
        self._counted[alert.alert_id] = None
        if len(self._counted) > self.remember:
            self._counted.popitem(last=False)
        metrics.ALERTS.labels(alert.stream, alert.detector, alert.severity, alert.tier).inc()
        money = money_named(alert.numbers)
        if money:
            metrics.AMOUNT.labels(alert.stream, alert.detector).inc(money)

    def open_summary(self) -> dict[str, tuple[int, float]]:
        """Per lifecycle detector: how many alerts are open, and the oldest one's event-time age in seconds."""
        out = {}
        for detector, opened in self._open.items():
            newest = self._newest.get(self._stream_of[detector])
            age = newest - min(opened.values()) if opened and newest is not None else 0.0
            out[detector] = (len(opened), max(0.0, age))
        return out

    def refresh(self) -> None:
        """Set the open-alert gauges (called on a timer and at scrape-worthy moments)."""
        for detector, (count, age) in self.open_summary().items():
            metrics.OPEN_ALERTS.labels(detector).set(count)
            metrics.OLDEST_OPEN.labels(detector).set(age)
