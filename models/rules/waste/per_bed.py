"""Waste per bed-day against peers 床均医疗废物产生量: an institution declaring far less than hospitals of its kind.

A hospital that has always sold part of its waste shows no change against its own history (``waste.generation_anomaly``
judges that), only against its peers: medical waste follows beds. Per peer group (the region's institution kinds,
``peer_groups``; re-keyed, so a group's members are judged together) each institution's kilograms generated over
the last ``window_days`` days (a week: small sites are collected every other day) are divided by its registered
beds (``beds``, 医疗机构执业登记床位) and by the days; each member is compared with the median of the *other*
members of its group. A ratio under ``min_ratio`` on ``days`` judged days in a row raises the alert — once per
episode, re-armed when the ratio is back — naming the peers' rates. A group with fewer than ``min_peers`` other
members with waste that week, or a member with fewer than ``min_beds`` beds, is not judged; an institution not in the
registry is not judged at all (the registry is the region's: a site whose beds are wrong shows here first).

>>> import random
>>> from datetime import datetime
>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> beds = {"H1": 800, "H2": 1200, "H3": 1000, "H4": 900}
>>> rt = Runtime([PerBedDetector(PerBedLimits(beds=beds, peer_groups={h: "tertiary" for h in beds}))])
>>> rng, n = random.Random(1), [0]
>>> def day(d, declared=None):
...     out = []
...     for inst, b in beds.items():
...         n[0] += 1
...         kg = b * 0.6 * rng.uniform(0.9, 1.1) * (declared or {}).get(inst, 1.0)
...         e = {"manifest_id": f"M{n[0]}", "event_type": "generated", "institution_id": inst, "region": "310104",
...              "category": "infectious", "weight_kg": round(kg, 1), "event_time": f"2026-10-{d:02d}T20:00:00+08:00"}
...         e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
...         out += rt.process(e, Source("zhijian.waste", 0, n[0], f"M{n[0]}/generated"))
...     return out
>>> [a for d in range(1, 15) for a in day(d)]
[]
>>> alerts = [a for d in range(15, 28) for a in day(d, {"H3": 0.35})]    # H3 declares a third from the 15th
>>> [(a.entity_id, a.numbers["day"]) for a in alerts]
[('H3', '2026-10-22')]
>>> print(alerts[0].reason)
institution H3 declared 0.22 kg of medical waste per bed a day over the 7 days to 2026-10-22 (1,000 beds), 0.36 of its peers' median 0.60 (tertiary: H1 0.59, H2 0.60, H4 0.60); under 0.5 on 3 days in a row
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context
from models.rules.anomaly.daily import DailyChart

EVIDENCE_KEPT = 3  # the last manifests of each member, as evidence


@dataclass(frozen=True)
class PerBedLimits:
    """Configuration ``[waste.generation_per_bed]``."""

    #: institution → registered beds (the region's registry); empty: not judged
    beds: dict[str, int] = field(default_factory=dict)
    #: institution → its peer group (医疗机构类别: tertiary, secondary, community …)
    peer_groups: dict[str, str] = field(default_factory=dict)
    window_days: int = 7  # the days a rate is taken over
    min_ratio: float = 0.5  # a rate under this share of the peers' median is evidence
    days: int = 3  # judged days in a row under it that raise the alert
    min_peers: int = 2  # other members with waste that week a member is compared with
    min_beds: int = 10  # a site with fewer registered beds is not judged


class PerBedDetector(DailyChart):
    name = "waste.generation_per_bed"
    version = "1"
    stream = "waste"
    Limits = PerBedLimits  # its configuration section [waste.generation_per_bed]
    key = "peer_group"
    key_field = "institution_id"
    fields = ("institution_id", "region", "event_type", "event_time", "weight_kg")
    max_evidence = 0  # evidence is kept per member (counted)

    @classmethod
    def _conformance_params(cls) -> dict[str, Any]:
        return {"days": 21, "own_scenarios": True, "scale": 0.6}  # a kind with three sites: peers to judge by

    def __init__(self, limits: PerBedLimits | None = None) -> None:
        super().__init__(limits)
        self._members: dict[str, list[str]] = {}
        for inst, group in sorted(self.limits.peer_groups.items()):
            if self.limits.beds.get(inst, 0) >= self.limits.min_beds:
                self._members.setdefault(group, []).append(inst)

    def key_of(self, event: dict[str, Any]) -> str | None:
        if event["event_type"] != "generated":
            return None
        group = self.limits.peer_groups.get(event["institution_id"])
        return group if group in self._members and event["institution_id"] in self._members[group] else None

    def values(self, event: dict[str, Any]) -> dict[str, float] | None:
        return {event["institution_id"]: float(event["weight_kg"])}

    def counted(self, ctx: Context, day: str, event: dict[str, Any], source: Source) -> None:
        kept = ctx.state.setdefault("evidence", {}).setdefault(event["institution_id"], [])
        kept.append(list(source))
        del kept[:-EVIDENCE_KEPT]

    def new_chart(self) -> None:
        return None  # the group's windows are the state (judge)

    def judge(self, ctx: Context, chart: None, day: str, totals: dict[str, float], evidence: list[Source],
              now: float) -> list[Alert]:
        c, st = self.limits, ctx.state
        members = self._members.get(ctx.key, [])
        ordinal = date.fromisoformat(day).toordinal()
        gap = min(c.window_days, ordinal - st.get("last", ordinal - 1))  # days without any manifest in the group
        st["last"] = ordinal
        windows: dict[str, list[float]] = st.setdefault("kg", {})
        for inst in members:
            w = windows.setdefault(inst, [])
            w.extend([0.0] * (gap - 1) + [totals.get(inst, 0.0)])
            del w[:-c.window_days]
        for inst in list(windows):
            if inst not in members:
                del windows[inst]  # left the group (the registry changed)
        full = {i: sum(w) / c.window_days / c.beds[i] for i, w in windows.items() if len(w) == c.window_days}
        below, armed = st.setdefault("below", {}), st.setdefault("armed", {})
        alerts = []
        for inst, rate in full.items():
            peers = {p: r for p, r in full.items() if p != inst and r > 0}
            if len(peers) < c.min_peers:
                continue
            median = statistics.median(peers.values())
            ratio = rate / median
            if ratio >= c.min_ratio:
                below.pop(inst, None)
                armed.pop(inst, None)  # armed again
                continue
            below[inst] = below.get(inst, 0) + 1
            if below[inst] >= c.days and not armed.get(inst):
                armed[inst] = True
                alerts.append(self._alert(ctx, inst, day, rate, median, ratio, peers, below[inst], sum(windows[inst]),
                                          now))
        return alerts

    def _alert(self, ctx: Context, inst: str, day: str, rate: float, median: float, ratio: float,
               peers: dict[str, float], run: int, kg: float, now: float) -> Alert:
        c, st = self.limits, ctx.state
        beds = c.beds[inst]
        listed = ", ".join(f"{p} {r:.2f}" for p, r in sorted(peers.items()))
        reason = (f"institution {inst} declared {rate:.2f} kg of medical waste per bed a day over the "
                  f"{c.window_days} days to {day} ({beds:,} beds), {ratio:.2f} of its peers' median {median:.2f} "
                  f"({ctx.key}: {listed}); under {c.min_ratio:g} on {run} days in a row")
        return Alert.build(
            detector=self.name, version=self.version, key=f"{inst}@{day}", stream=self.stream, severity="high",
            tier="violation", entity_kind="institution", entity_id=inst, institution_id=inst,
            region=st.get("ctx", {}).get("region", "unknown"), event_t=now, score=c.min_ratio / max(ratio, 1e-3),
            reason=reason,
            numbers={"day": day, "peer_group": ctx.key, "beds": beds, "window_days": c.window_days,
                     "kg": round(kg, 1), "kg_per_bed_day": round(rate, 3), "peers_median": round(median, 3),
                     "ratio": round(ratio, 3), "min_ratio": c.min_ratio, "days_below": run,
                     "peers": {p: round(r, 3) for p, r in sorted(peers.items())}},
            evidence=[Source(*s) for s in st.get("evidence", {}).get(inst, ())],
        )
