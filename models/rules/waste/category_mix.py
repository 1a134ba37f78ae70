"""Category mix shift 医疗废物分类构成异常: an institution's waste splits into its categories unlike its own normal.

The plans ask for 在线监控医疗废物流向 and name illegal trading of medical waste: a category that stops being
declared — infusion sets and other plastic infectious waste sold to a recycler, pharmaceutical waste leaving by the
back door — may hardly move a big hospital's total, but it moves its mix (感染性 / 损伤性 / 病理性 / 药物性 /
化学性, 医疗废物分类目录 2021). Each institution's collection day is the kilograms generated per category; a
composition chart (:class:`~models.rules.anomaly.mix.MixCUSUM`) measures the day's shift from the shares learned from
its own past days (total variation distance: the share of the weight in another category than usual) and adds up
the evidence against the site's usual day-to-day wobble. It alerts when the evidence crosses ``threshold`` — once
per episode — naming the categories that moved. A shift under ``min_shift`` is no evidence (a vaccination
campaign's extra sharps), a day under ``min_kg`` is not judged (a small clinic's few kilograms split into
categories by chance), nor is a site before ``warmup_days`` collection days. A site that only weighs more or less
with the same mix (a catch-up collection after a holiday) does not move it: its total is
``waste.generation_anomaly``'s.

>>> import random
>>> from datetime import datetime
>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> rng = random.Random(5)
>>> rt = Runtime([CategoryMixDetector()])
>>> mix = {"infectious": 0.74, "sharps": 0.10, "pathological": 0.05, "pharmaceutical": 0.06, "chemical": 0.05}
>>> def day(i, infectious=1.0):
...     out = []
...     for c, share in mix.items():
...         e = {"manifest_id": f"M{i}{c[:3]}", "event_type": "generated", "institution_id": "H3", "region": "310104",
...              "category": c, "weight_kg": round(600 * share * (infectious if c == "infectious" else 1.0)
...                                                 * rng.uniform(0.85, 1.15), 1),
...              "container_count": 8, "event_time": f"2026-10-{i:02d}T20:00:00+08:00"}
...         e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
...         out += rt.process(e, Source("zhijian.waste", 0, i, f"{e['manifest_id']}/generated"))
...     return out
>>> [a for i in range(1, 16) for a in day(i)]
[]
>>> day(16, infectious=0.45)        # its infectious waste more than halves; a day is judged once the next has begun
[]
>>> [a] = day(17)
>>> print(a.reason)
institution H3's medical waste on 2026-10-16 (348 kg) split unlike its normal: 20 points of its weight in other categories than usual (infectious 75 % → 55 %, sharps 10 % → 17 %), usual day-to-day shift 2 ± 2 points; evidence 7.7 (threshold 5)
>>> a.numbers["shares"]["infectious"], a.numbers["normal_shares"]["infectious"]
(0.549, 0.745)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context
from models.rules.anomaly.cusum import Episode
from models.rules.anomaly.daily import DailyChart
from models.rules.anomaly.mix import MixCUSUM, shares_of, shift


@dataclass(frozen=True)
class CategoryMixLimits:
    """Configuration ``[waste.category_mix]``."""

    threshold: float = 5.0  # evidence that raises the alert
    min_shift: float = 0.10  # a day's shift (share of the weight in other categories) below which it is no evidence
    slack_sd: float = 1.0  # the CUSUM's slack, in deviations of the usual shift
    min_sd: float = 0.02  # the usual shift's spread is at least this (2 points)
    warmup_days: int = 7  # collection days learned before one is judged
    min_kg: float = 10.0  # a day lighter than this is not judged (nor learned)


class CategoryMixDetector(DailyChart):
    name = "waste.category_mix"
    version = "1"
    stream = "waste"
    Limits = CategoryMixLimits  # its configuration section [waste.category_mix]
    key = "institution"
    key_field = "institution_id"
    fields = ("institution_id", "region", "event_type", "event_time", "category", "weight_kg")

    def key_of(self, event: dict[str, Any]) -> str | None:
        return event["institution_id"] if event["event_type"] == "generated" else None

    def values(self, event: dict[str, Any]) -> dict[str, float] | None:
        return {event["category"]: event["weight_kg"]}

    def new_chart(self) -> Episode:
        lim = self.limits
        return Episode(MixCUSUM(k=lim.slack_sd, warmup=lim.warmup_days, min_sd=lim.min_sd, min_shift=lim.min_shift),
                       lim.threshold)

    def judge(self, ctx: Context, chart: Episode, day: str, totals: dict[str, float], evidence: list[Source],
              now: float) -> list[Alert]:
        kg = sum(totals.values())
        if kg < self.limits.min_kg:
            return []
        mix: MixCUSUM = chart.chart
        normal, usual, spread = dict(mix.shares), mix.distance.mean, mix.distance.sd
        if not chart.observe({"kg": totals}):
            return []
        today = shares_of(totals)
        moved = shift(normal, today)
        changes = sorted({*normal, *today}, key=lambda c: -abs(today.get(c, 0.0) - normal.get(c, 0.0)))
        named = [c for c in changes if abs(today.get(c, 0.0) - normal.get(c, 0.0)) >= 0.25 * moved][:3]
        inst, lim = ctx.key, self.limits
        detail = ", ".join(f"{c} {100 * normal.get(c, 0.0):.0f} % → {100 * today.get(c, 0.0):.0f} %" for c in named)
        reason = (f"institution {inst}'s medical waste on {day} ({kg:.0f} kg) split unlike its normal: "
                  f"{100 * moved:.0f} points of its weight in other categories than usual ({detail}), usual "
                  f"day-to-day shift {100 * usual:.0f} ± {100 * spread:.0f} points; evidence {mix.statistic:.1f} "
                  f"(threshold {lim.threshold:g})")
        return [Alert.build(
            detector=self.name, version=self.version, key=f"{inst}@{day}",
            stream=self.stream, severity="medium", tier="violation", entity_kind="institution", entity_id=inst,
            institution_id=inst, region=ctx.state["ctx"]["region"], event_t=now,
            score=mix.statistic / lim.threshold, reason=reason,
            numbers={"day": day, "weight_kg": round(kg, 1), "shift": round(moved, 3),
                     "shares": {c: round(v, 3) for c, v in sorted(today.items())},
                     "normal_shares": {c: round(v, 3) for c, v in sorted(normal.items())},
                     "usual_shift": round(usual, 3), "usual_shift_sd": round(spread, 3),
                     "moved": named, "evidence": round(mix.statistic, 2)},
            evidence=evidence,
        )]
