"""Card misuse at a pharmacy 套刷社保卡: many different insurance cards settled in a burst.

A designated pharmacy (定点药店) that swipes a stack of collected cards shows as far more
distinct cards in a few minutes than its counter can serve. The detector keeps, per pharmacy,
its recent settlements in event-time order and judges each window of ``window_minutes`` once it
is complete — when the watermark has passed its end by ``grace_minutes`` (claims are keyed by
patient, so a pharmacy's settlements come from every partition; the detector is re-keyed by
institution, :mod:`models.engine.rekey`, and its watermark is the slowest partition's). A window opening
at a settlement that holds ``min_cards`` distinct cards is a burst; the earliest such window
raises the alert and later windows overlapping it extend the same burst. Judging complete
windows only makes the alert — its id, its claims, its numbers — the same whatever order the
partitions were read in. The entity is the pharmacy.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> rt = Runtime([CardBurstDetector(CardBurstLimits(window_minutes=15, min_cards=5, grace_minutes=5))])
>>> def settle(n, patient, minute):
...     e = {"claim_id": f"CL{n}", "claim_type": "pharmacy", "institution_id": "P03", "patient": patient,
...          "total_amount": 30.0, "_t": 1791939600.0 + 60 * minute}
...     return rt.process(e, Source("zhijian.claims", n % 4, n, f"CL{n}"))
>>> [a for n in range(5) for a in settle(n, f"P{n}", n)]        # five cards in four minutes
[]
>>> settle(5, "P5", 6), settle(6, "P6", 0.5)                     # more of the burst, one out of order
([], [])
>>> [a] = settle(7, "P0", 40)                                    # the watermark passes the window's end
>>> a.entity_id, a.numbers["cards"], a.numbers["minutes"], a.numbers["claim_ids"][:3]
('P03', 7, 6.0, ['CL0', 'CL6', 'CL1'])
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from models.contracts.alert import Alert, Source, iso
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class CardBurstLimits:
    """Configuration ``[claim.card_misuse]``."""

    window_minutes: float = 15.0
    min_cards: int = 15
    claim_types: list[str] = field(default_factory=lambda: ["pharmacy"])
    # settlements are stamped by the pharmacy's till as they happen; ten minutes covers a slow upload
    grace_minutes: float = 10.0


class CardBurstDetector(KeyedDetector):
    name = "claim.card_misuse"
    version = "1"
    stream = "claim"
    Limits = CardBurstLimits  # its configuration section [claim.card_misuse]
    key = "institution"  # a designated pharmacy is an institution: its state sits beside the institution profile
    key_field = "institution_id"
    fields = ("claim_id", "claim_type", "institution_id", "region", "patient", "total_amount")
    retention_s = 86400.0

    def key_of(self, event: dict[str, Any]) -> str | None:
        return event["institution_id"] if event["claim_type"] in self.limits.claim_types else None

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        st = ctx.state
        t = event["_t"]
        if t < st.get("judged", float("-inf")):
            return []  # the windows it could belong to were judged
        kept = st.setdefault("settlements", [])  # sorted [t, claim id, patient, amount, source]
        item = [t, event["claim_id"], event["patient"], event["total_amount"], list(source)]
        i = bisect.bisect_left(kept, item[:2])
        if i < len(kept) and kept[i][:2] == item[:2]:
            return []  # redelivered
        kept.insert(i, item)
        st["region"] = event.get("region", "unknown")
        self._schedule(ctx)
        return []

    def _schedule(self, ctx: Context) -> None:
        kept = ctx.state.get("settlements")
        if kept:
            ctx.set_timer(kept[0][0] + 60 * (self.limits.window_minutes + self.limits.grace_minutes), "window")
        else:
            ctx.cancel_timer("window")

    def on_timer(self, ctx: Context, tag: str, t: float) -> list[Alert]:
        """Judge every window whose end the watermark has passed, oldest first."""
        st, lim = ctx.state, self.limits
        span, kept = lim.window_minutes * 60, st["settlements"]
        complete_before = ctx.watermark - 60 * lim.grace_minutes  # windows ending before this are final
        alerts = []
        while kept and kept[0][0] + span <= complete_before:
            start = kept[0][0]
            members = kept[:bisect.bisect_right(kept, [start + span, "\uffff"])]
            cards = {m[2] for m in members}
            burst = st.get("burst")  # [start, end] of the last burst reported
            if len(cards) >= lim.min_cards:
                end = members[-1][0]
                if burst is not None and start <= burst[1]:
                    burst[1] = max(burst[1], end)  # the burst reported, going on
                else:
                    st["burst"] = [start, end]
                    alerts.append(self._alert(ctx, members, cards))
            st["judged"] = start
            kept.pop(0)
        if not kept:
            del st["settlements"]
        if st.get("burst") and st["burst"][1] < complete_before - span:
            del st["burst"]
        self._schedule(ctx)  # "judged" stays (late settlements are dropped) until the key idles out
        return alerts

    def _alert(self, ctx: Context, members: list, cards: set) -> Alert:
        site_id, lim = ctx.key, self.limits
        first, last = members[0][0], members[-1][0]
        amount = sum(m[3] for m in members)
        minutes = (last - first) / 60
        reason = (f"pharmacy {site_id}: {len(cards)} different insurance cards settled in {minutes:.0f} min "
                  f"(from {iso(first)}), {amount:.2f} in total; threshold {lim.min_cards} cards "
                  f"in {lim.window_minutes:g} min")
        return Alert.build(
            detector=self.name, version=self.version, key=f"{site_id}@{members[0][1]}",
            stream=self.stream, severity="high", tier="fraud", entity_kind="institution", entity_id=site_id,
            institution_id=site_id, region=ctx.state.get("region", "unknown"),
            event_t=last, score=len(cards) / lim.min_cards, reason=reason,
            numbers={"cards": len(cards), "minutes": round(minutes, 1), "total_amount": round(amount, 2),
                     "window_minutes": lim.window_minutes, "claim_ids": [m[1] for m in members]},
            evidence=[Source(*m[4]) for m in members][:50],
        )
