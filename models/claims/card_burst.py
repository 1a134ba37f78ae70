"""Card misuse at a pharmacy 套刷社保卡: many different insurance cards settled in a burst.

A designated pharmacy (定点药店) that swipes a stack of collected cards shows as far more
distinct cards in a few minutes than its counter can serve. The detector keeps, per
pharmacy, its recent settlements in event-time order — claims are partitioned by patient, so
a pharmacy's settlements arrive interleaved from several partitions, out of time order; they
are kept until every partition has moved past them — and alerts when some ``window_minutes``
holds ``min_cards`` distinct cards; one alert per burst (a window overlapping a reported burst
extends it). The entity is the pharmacy.

>>> from models.alert import Source
>>> d = CardBurstDetector(CardBurstLimits(window_minutes=15, min_cards=5))
>>> def settle(n, patient, minute):
...     e = {"claim_id": f"CL{n}", "claim_type": "pharmacy", "institution_id": "P03", "patient": patient,
...          "total_amount": 30.0, "_t": 1791939600.0 + 60 * minute}
...     return d.process(e, Source("zhijian.claims", n % 4, n, f"CL{n}"))
>>> [a for n in range(4) for a in settle(n, f"P{n}", n)]
[]
>>> [a] = settle(4, "P4", 4)
>>> a.entity_id, a.numbers["cards"], a.numbers["minutes"]
('P03', 5, 4.0)
>>> settle(5, "P5", 5), settle(6, "P6", 0.5)   # the same burst, in or out of order: no second alert
([], [])
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from models.alert import Alert, Source, iso
from models.anomaly.watermark import PartitionWatermark


@dataclass(frozen=True)
class CardBurstLimits:
    """Configuration ``[claim.card_misuse]``."""

    window_minutes: float = 15.0
    min_cards: int = 15
    claim_types: list[str] = field(default_factory=lambda: ["pharmacy"])


@dataclass(slots=True)
class _Site:
    settlements: list = field(default_factory=list)  # sorted (t, claim id, patient, amount, source)
    claims: set = field(default_factory=set)
    bursts: list = field(default_factory=list)  # (start, end) of bursts already reported


class CardBurstDetector:
    name = "claim.card_misuse"
    version = "1"
    stream = "claim"
    Limits = CardBurstLimits  # its configuration section [claim.card_misuse]
    needs_partitions = True  # told the stream's partition count (daily charts wait for every partition)

    def __init__(self, limits: CardBurstLimits | None = None, partitions: int | None = None) -> None:
        self.limits = limits or CardBurstLimits()
        self._sites: dict[str, _Site] = {}
        self._watermark = PartitionWatermark(partitions)  # until every partition is heard from, keep everything

    def process(self, event: dict[str, Any], source: Source) -> list[Alert]:
        if event["claim_type"] not in self.limits.claim_types:
            return []
        t, site_id = event["_t"], event["institution_id"]
        site = self._sites.setdefault(site_id, _Site())
        if event["claim_id"] in site.claims:
            return []  # redelivered
        # every partition has moved past the watermark, so no settlement still to come is older: a window
        # that could still grow starts after watermark − window (less 6 h of slack)
        keep_from = self._watermark.observe(source.partition, t) - self.limits.window_minutes * 60 - 6 * 3600
        if t < keep_from:
            return []  # a replay of settlements long judged
        bisect.insort(site.settlements, (t, event["claim_id"], event["patient"], event["total_amount"], source))
        site.claims.add(event["claim_id"])
        while site.settlements and site.settlements[0][0] < keep_from:
            site.claims.discard(site.settlements.pop(0)[1])
        site.bursts = [b for b in site.bursts if b[1] >= keep_from]
        window = self._busiest_window(site.settlements, t)
        if window is None:
            return []
        first, last, members = window
        for i, (b0, b1) in enumerate(site.bursts):
            if first <= b1 and last >= b0:  # the burst already reported, growing
                site.bursts[i] = (min(b0, first), max(b1, last))
                return []
        site.bursts.append((first, last))
        cards = {m[2] for m in members}
        amount = sum(m[3] for m in members)
        minutes = (last - first) / 60
        reason = (f"pharmacy {site_id}: {len(cards)} different insurance cards settled in {minutes:.0f} min "
                  f"(from {iso(first)}), {amount:.2f} in total; threshold {self.limits.min_cards} cards "
                  f"in {self.limits.window_minutes:g} min")
        return [Alert.build(
            detector=self.name, version=self.version, key=f"{site_id}@{members[0][1]}",
            stream=self.stream, severity="high", tier="fraud", entity_kind="institution", entity_id=site_id,
            institution_id=site_id, region=event.get("region", "unknown"),
            event_t=last, score=len(cards) / self.limits.min_cards, reason=reason,
            numbers={"cards": len(cards), "minutes": round(minutes, 1), "total_amount": round(amount, 2),
                     "window_minutes": self.limits.window_minutes, "claim_ids": [m[1] for m in members]},
            evidence=[m[4] for m in members][:50],
        )]

    def _busiest_window(self, items: list, t: float):
        """The window of ``window_minutes`` holding ``t`` with the most distinct cards, if it reaches the threshold."""
        span = self.limits.window_minutes * 60
        lo = bisect.bisect_left(items, (t - span,))
        hi = bisect.bisect_right(items, (t + span, "\uffff"))
        near = items[lo:hi]
        best = None
        j = 0
        for i in range(len(near)):
            while near[i][0] - near[j][0] > span:
                j += 1
            if not (near[j][0] <= t <= near[i][0]):
                continue
            cards = {m[2] for m in near[j:i + 1]}
            if len(cards) >= self.limits.min_cards and (best is None or len(cards) > len(best[2])):
                best = (near[j][0], near[i][0], near[j:i + 1])
        return best
