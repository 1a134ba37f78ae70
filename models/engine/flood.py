"""Alert floods bounded (告警风暴抑制): at most so many alerts per entity per hour, then one summary.

A broken feed, a misconfigured limit or a carrier falsifying every manifest can make one entity
raise hundreds of alerts in an hour. An analyst reads the first few; the rest bury everything
else. :class:`AlertCap` lets the first ``per_hour`` distinct alerts of an entity (kind and id) in
an hour of event time through; every further alert of that entity and hour is held back and
counted, by detector, in one **summary alert** (detector ``alerts.flood``) whose id is fixed by the
entity and the hour. The summary is sent when the first alert is held back, again each time the
held-back count doubles (1, 2, 4, 8 … so a flood of n alerts costs about log₂ n records), and a
last time, ``closed``, when the hour is over in event time. A later record of the same id
supersedes an earlier one, as for every alert.

An alert already let through passes again unchanged (an excursion that closes keeps its id), so
updates are never held back. The cap lives in the runtime of the partition that raised the alerts
(:mod:`models.engine.runtime`), with its state checkpointed like a detector's: an entity whose alerts come
from P partitions can get P × ``per_hour`` before its summaries.

>>> from models.contracts.alert import Alert, Source
>>> from models.engine.detector import Context
>>> cap = AlertCap(per_hour=2)
>>> def alert(n):
...     return Alert.build(detector="waste.weight_discrepancy", version="1", key=f"M{n}", stream="waste",
...                        severity="high", tier="violation", entity_kind="carrier", entity_id="C9",
...                        institution_id="H1", region="310101", event_t=3600.0 * 100 + n, score=1.0, reason="…",
...                        numbers={}, evidence=[Source("zhijian.waste", 0, n, f"M{n}")])
>>> ctx = Context("carrier:C9@360000", {}, 0.0, {})
>>> [len(cap.admit(ctx, alert(n))) for n in range(6)]    # two through, then summaries at 1, 2 and 4 held back
[1, 1, 1, 1, 0, 1]
>>> [a.alert_id for a in cap.admit(ctx, alert(1))] == [alert(1).alert_id]    # one let through passes again
True
>>> [s] = cap.admit(ctx, alert(9)) or cap.on_timer(ctx, "", 0.0)
>>> s.detector, s.status, s.numbers["held_back"], s.numbers["by_detector"], s.numbers["cap_per_hour"]
('alerts.flood', 'closed', 5, {'waste.weight_discrepancy': 5}, 2)
>>> print(s.reason)
carrier C9: 5 more alerts in the hour from 1970-01-05T04:00:00+00:00 held back after the first 2 (waste.weight_discrepancy 5)
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from models.contracts.alert import Alert, Source, iso
from models.engine.detector import Context, KeyedDetector

HOUR_S = 3600.0


@dataclass(frozen=True)
class FloodLimits:
    #: Distinct alerts of one entity in one hour of event time before the rest are summarised. Twenty is
    #: what an analyst can read about one entity in an hour; every detector raises at most one alert per
    #: event, so an honest entity reaches it only if it sends twenty suspect events in an hour.
    per_hour: int = 20
    #: After the hour's end, how long (event time) late alerts of it still count into its summary.
    grace_s: float = HOUR_S
    #: Alert ids remembered per entity-hour among the held back (CRC32s), so a redelivered alert is not
    #: counted twice; beyond it a redelivery may count again.
    remember: int = 4096


class AlertCap(KeyedDetector):
    """Holds back an entity's alerts beyond the hourly cap and summarises them (see the module)."""

    name = "alerts.flood"
    version = "1"
    stream = "*"
    key = "entity-hour"  # the runtime's own: alerts, not events, are keyed by it
    Limits = FloodLimits
    retention_s = 2 * HOUR_S

    def __init__(self, limits: FloodLimits | None = None, per_hour: int | None = None) -> None:
        if limits is None:
            limits = FloodLimits(per_hour=per_hour) if per_hour else FloodLimits()
        super().__init__(limits)

    @staticmethod
    def key_for(alert: Alert) -> str:
        return f"{alert.entity_kind}:{alert.entity_id}@{int(alert.event_t // HOUR_S) * int(HOUR_S)}"

    def key_of(self, event: dict[str, Any]) -> None:
        return None  # never handed events

    def process(self, ctx: Context, event: dict[str, Any], source: Any) -> list[Alert]:
        return []

    def admit(self, ctx: Context, alert: Alert) -> list[Alert]:
        """The alert itself, or nothing (held back), or the updated summary."""
        st = ctx.state
        passed = st.setdefault("passed", [])
        if alert.alert_id in passed:
            return [alert]
        if len(passed) < self.limits.per_hour:
            passed.append(alert.alert_id)
            return [alert]
        crc = zlib.crc32(alert.alert_id.encode())
        held = st.setdefault("held", [])
        if crc in held:
            return []
        if len(held) < self.limits.remember:
            held.append(crc)
        by = st.setdefault("by_detector", {})
        by[alert.detector] = by.get(alert.detector, 0) + 1
        if "entity" not in st:
            hour = int(alert.event_t // HOUR_S) * HOUR_S
            st["entity"] = [alert.entity_kind, alert.entity_id, alert.stream, alert.tier, alert.institution_id,
                            alert.region, hour]
            st["first"] = [list(s) for s in alert.evidence[:1]]
            ctx.set_timer(hour + HOUR_S + self.limits.grace_s)
        st["last"] = [list(s) for s in alert.evidence[:1]]
        n = sum(by.values())
        return [self._summary(st, "open")] if n & (n - 1) == 0 else []

    def on_timer(self, ctx: Context, tag: str, t: float) -> list[Alert]:
        alerts = [self._summary(ctx.state, "closed")] if "entity" in ctx.state else []
        ctx.state.clear()
        return alerts

    def _summary(self, st: dict[str, Any], status: str) -> Alert:
        kind, entity, stream, tier, institution, region, hour = st["entity"]
        by = dict(sorted(st["by_detector"].items()))
        n = sum(by.values())
        what = ", ".join(f"{d} {k}" for d, k in by.items())
        evidence = [Source(*s) for s in st["first"]]
        if st["last"] != st["first"]:
            evidence += [Source(*s) for s in st["last"]]
        return Alert.build(
            detector=self.name, version=self.version, key=f"{hour:.0f}", entity_kind=kind, entity_id=entity,
            stream=stream, severity="medium", tier=tier, institution_id=institution, region=region,
            event_t=hour, score=n / self.limits.per_hour, status=status,
            reason=(f"{kind} {entity}: {n} more alert{'s' if n > 1 else ''} in the hour from {iso(hour)} held back "
                    f"after the first {self.limits.per_hour} ({what})"),
            numbers={"hour": iso(hour), "held_back": n, "by_detector": by, "cap_per_hour": self.limits.per_hour},
            evidence=evidence,
        )
