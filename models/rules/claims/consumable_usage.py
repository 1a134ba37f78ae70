"""Excess use of high-value consumables 高值医用耗材超常: a ward billing a consumable on more of its stays.

高值医用耗材 (stents, staplers, haemostats, joint prostheses …) are billed by the unit on the settled stays; the
national list of those to watch closely (第一批国家高值医用耗材重点治理清单, 2020) and the region's own are its
key-monitored items. Per department code across the region (re-keyed by the department a stay was discharged from,
出院科别; stays naming none are compared institution with institution), each institution's ward day is its
discharged stays and, for each consumable (claim items of category ``consumable``), how many of them bill it, with
the units and the amount. The same peer-adjusted chart as the drugs' (:class:`~models.rules.anomaly.peer_share.
PeerShareCUSUM`) adds up the evidence that the ward's share of stays billing it rose (its odds ``ratio``-fold)
beyond its own baseline (the weeks before the last, faded over about a month) *and* beyond what the same ward at the
other institutions shows that day: a price cut after volume-based procurement (集采) that raises every hospital's use
is excused. Items on the list (``consumables``: code → name and basis; and the workbench's watch list ``key_monitored``
entries ``consumable:<code>``) get the stricter ``key_ratio`` and ``key_threshold``. Corrections: a void takes its stay
back out, a replacement counts only after a void of its claim (settled again). A ward with fewer than
``min_stays`` stays in its baseline weeks is not judged. One alert per episode and ward–consumable; its evidence is
stays of the day billing it.

>>> import random
>>> from datetime import datetime
>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> rng = random.Random(3)
>>> listed = {"M-STENT": {"name": "血管支架 stent", "basis": "第一批国家高值医用耗材重点治理清单(2020)"}}
>>> rt = Runtime([ConsumableUsageDetector(ConsumableUsageLimits(consumables=listed))])
>>> n = [0]
>>> def day(d, push=0.0, cut=0.0):
...     out = []
...     for inst in ("H1", "H2", "H3"):
...         for i in range(40):
...             lines = [{"item_code": "S-BED", "category": "bed", "quantity": 5, "amount": 300.0}]
...             if rng.random() < 0.3 + cut + (push if inst == "H2" else 0.0):
...                 lines.append({"item_code": "M-STENT", "category": "consumable", "quantity": 1, "amount": 780.0})
...             n[0] += 1
...             e = {"claim_id": f"C{n[0]}", "institution_id": inst, "region": "310104", "claim_type": "inpatient",
...                  "discharge_department": "CARD", "items": lines,
...                  "event_time": f"2026-10-{d:02d}T{8 + i // 4:02d}:{i % 4 * 15:02d}:00+08:00"}
...             e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
...             out += rt.process(e, Source("zhijian.claims", 0, n[0], e["claim_id"]))
...     return out
>>> [a for d in range(1, 15) for a in day(d)]
[]
>>> [a for d in range(15, 22) for a in day(d, cut=0.15)]     # a price cut: every cardiology ward bills more
[]
>>> alerts = [a for d in range(22, 29) for a in day(d, push=0.35)]     # H2's cardiology alone
>>> [(a.entity_kind, a.entity_id, a.numbers["consumable"], a.numbers["day"]) for a in alerts]
[('department', 'H2/CARD', 'M-STENT', '2026-10-23')]
>>> print(alerts[0].reason)
ward CARD of H2: 血管支架 stent (listed: 第一批国家高值医用耗材重点治理清单(2020)) billed on 28 of 40 stays discharged on 2026-10-23 (70 %; 28 units, 21,840 yuan), expected 28 % from its own history (28 %) and the same ward at the other institutions (today 30 %, usual 32 %); evidence of 2× the odds 14.1 (threshold 8)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context
from models.rules.anomaly.peer_share import PeerShareCUSUM
from models.rules.claims import versions
from models.rules.prescription.drug_usage import DrugUsageDetector

EVIDENCE_PER_DAY = 3  # stays kept as evidence per ward, consumable and day
WATCHED_FROM = 1.0  # a chart's evidence from which its day's stays are kept (listed consumables: always)
PEER_PRIOR = 10.0  # pseudo-stays the peers' share today (and a ward's own baseline) is smoothed by
NO_WARD = "-"  # the key of the stays naming no department: institutions compared with each other


@dataclass(frozen=True)
class ConsumableUsageLimits:
    """Configuration ``[claim.consumable_usage]``."""

    ratio: float = 3.0  # the rise of the odds the chart is tuned to find, for any consumable
    threshold: float = 15.0  # evidence (log-likelihood ratio) that raises the alert
    key_ratio: float = 2.0  # the same for a listed one (stricter)
    key_threshold: float = 8.0
    min_stays: int = 50  # a ward's discharged stays in the baseline weeks before it is judged (a week of a small one)
    #: item code → {"name", "basis"}: the high-value consumables to watch closely (高值医用耗材重点治理清单), the
    #: region's codes
    consumables: dict[str, dict[str, str]] = field(default_factory=dict)


class ConsumableUsageDetector(DrugUsageDetector):
    name = "claim.consumable_usage"
    version = "1"
    stream = "claim"
    Limits = ConsumableUsageLimits  # its configuration section [claim.consumable_usage]
    key = "department"
    key_field = "discharge_department"
    fields = ("institution_id", "region", "claim_type", "event_time", "items", "discharge_department", "claim_id",
              "original_claim_id", "adjustment", "version")
    max_evidence = 0  # evidence is kept per ward and consumable (counted)
    watch_kind = "consumable"  # the watch list's entries ``consumable:<code>`` on ``key_monitored`` are listed too
    versioned = True  # a void takes its stay back out; its settlement after counts again (process)

    @classmethod
    def _conformance_params(cls) -> dict[str, Any]:
        # hospitals sharing wards (peers), and a shorter baseline: the simulated wards fill over the first week
        return {"days": 28, "own_scenarios": True, "scale": 0.6, "limits": {"min_stays": 25}}

    def __init__(self, limits: ConsumableUsageLimits | None = None) -> None:
        super(DrugUsageDetector, self).__init__(limits)
        self._key = self.limits.consumables

    def key_of(self, event: dict[str, Any]) -> str | None:
        if event["claim_type"] != "inpatient":
            return None
        return event.get("discharge_department") or NO_WARD

    def context(self, event: dict[str, Any]) -> dict[str, Any]:
        return {}

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        if not versions.counted_once(ctx.state, event):
            return []  # a price correction: the stay still counts as it did
        return super().process(ctx, event, source)

    def _sum_drugs(self, event: dict[str, Any]) -> dict[str, list[float]]:
        """The stay's consumables: item code → [amount, units] over its lines."""
        out: dict[str, list[float]] = {}
        for it in event["items"]:
            if it.get("category") == "consumable":
                sums = out.setdefault(str(it["item_code"]), [0.0, 0.0])
                sums[0] += float(it.get("amount") or 0.0)
                sums[1] += float(it.get("quantity") or 0.0)
        return out

    def values(self, event: dict[str, Any]) -> dict[str, float] | None:
        sign = -1.0 if versions.adjustment(event) == "void" else 1.0
        inst = event["institution_id"]
        out = {f"n\t*\t{inst}": sign}  # the ward's stays; one peer group per key: the same ward everywhere
        for code, (amount, units) in self._drugs(event).items():
            out[f"k\t{inst}\t{code}"] = sign
            out[f"a\t{inst}\t{code}"] = sign * amount
            out[f"d\t{inst}\t{code}"] = sign * units
        return out

    def counted(self, ctx: Context, day: str, event: dict[str, Any], source: Source) -> None:
        st, inst = ctx.state, event["institution_id"]
        regions = st.setdefault("regions", {})
        if inst not in regions:
            regions[inst] = event.get("region") or "unknown"
        if versions.adjustment(event) == "void":
            return
        charts = st.get("charts", {})
        for code in self._drugs(event):
            kept = charts.get(f"{inst}\t{code}")
            ev = st.setdefault("ev", {}).setdefault(day, {}).setdefault(f"{inst}\t{code}", [])
            if ev and (len(ev) >= EVIDENCE_PER_DAY or (self._listed(ctx, code, day) is None
                                                       and (kept is None or kept[0] < WATCHED_FROM))):
                continue  # the day's first is always kept: an alert has evidence however fast it came
            ev.append(list(source))

    def _chart(self, listed: bool) -> tuple[PeerShareCUSUM, float]:
        c = self.limits
        ratio, threshold = (c.key_ratio, c.key_threshold) if listed else (c.ratio, c.threshold)
        # a ward's peers are a few wards of tens of stays a day: their share today is smoothed by PEER_PRIOR
        # pseudo-stays, not the drug charts' 50, or a rise every ward shares would be excused only in part
        return PeerShareCUSUM(ratio, min_trials=c.min_stays, prior_trials=PEER_PRIOR), threshold

    def _alert(self, ctx: Context, doc: str, dept: str, code: str, day: str, listed: dict[str, str] | None,
               x: dict[str, Any], totals: dict[str, float], model: PeerShareCUSUM, threshold: float,
               evidence: list[Source], now: float) -> Alert:
        inst, ward = doc, ctx.key  # the chart's unit is the institution, its peers the same ward elsewhere
        named = ward != NO_WARD
        baseline, peer_baseline = model.baseline(x), model.peer_baseline(x)
        name = (listed or {}).get("name") or code  # the claim line's own name is free text: never in an alert
        amount = round(totals.get(f"a\t{inst}\t{code}", 0.0), 2)
        units = round(totals.get(f"d\t{inst}\t{code}", 0.0))
        ratio = self.limits.key_ratio if listed else self.limits.ratio
        share = x["k"] / x["n"]
        peer_share = x["peer_k"] / x["peer_n"] if x["peer_n"] else None
        key_text = f" (listed: {listed.get('basis', 'listed')})" if listed else ""
        where = f"ward {ward} of {inst}" if named else f"institution {inst}"
        others = "the same ward at the other institutions" if named else "the other institutions"
        peers = (f"{others} (today {100 * peer_share:.0f} %, usual {100 * peer_baseline:.0f} %)"
                 if peer_share is not None else f"no stay at {others} that day")
        reason = (f"{where}: {name}{key_text} billed on {x['k']} of {x['n']} stays discharged on {day} "
                  f"({100 * share:.0f} %; {units} units, {amount:,.0f} yuan), expected {100 * model.expected:.0f} % "
                  f"from its own history ({100 * baseline:.0f} %) and {peers}; evidence of {ratio:g}× the odds "
                  f"{model.statistic:.1f} (threshold {threshold:g})")
        return Alert.build(
            detector=self.name, version=self.version, key=f"{code}@{day}", stream=self.stream,
            severity="medium" if listed else "low", tier="excess_usage",
            entity_kind="department" if named else "institution", entity_id=f"{inst}/{ward}" if named else inst,
            institution_id=inst, region=ctx.state.get("regions", {}).get(inst, "unknown"), event_t=now,
            score=model.statistic / threshold, reason=reason,
            numbers={"day": day, "department": ward if named else None, "consumable": code, "consumable_name": name,
                     "listed": bool(listed), "stays": x["n"], "with_consumable": x["k"], "share": round(share, 4),
                     "units": units, "amount": amount, "expected_share": round(model.expected, 4),
                     "baseline_share": round(baseline, 4), "peer_stays": x["peer_n"],
                     "peer_with_consumable": x["peer_k"],
                     "peer_share": None if peer_share is None else round(peer_share, 4),
                     "peer_baseline_share": round(peer_baseline, 4), "evidence": round(model.statistic, 2),
                     "threshold": threshold, "ratio": ratio},
            evidence=evidence,
        )
