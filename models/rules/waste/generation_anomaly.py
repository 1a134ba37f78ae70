"""Generation anomaly 医疗废物产生量异常: an institution's waste falls far below its own normal.

Waste that leaves the system (illegal dumping, sale to recyclers) shows as a site weighing in
much less than its beds and visits would make. Each institution's day is the kilograms of
all manifests it generated that day; a downward CUSUM (:mod:`models.rules.anomaly.cusum`) on the
day's weight, standardized by the mean and spread learned from its own past days, alerts
when the evidence crosses ``threshold`` — once per episode. Days without any manifest (small
sites collected every other day) are not days of the series.

>>> import random
>>> from datetime import datetime
>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> rng = random.Random(2)
>>> rt = Runtime([GenerationAnomalyDetector()])
>>> def day(i, kg):
...     e = {"manifest_id": f"M{i}", "event_type": "generated", "institution_id": "H3", "region": "310104",
...          "category": "infectious", "weight_kg": kg, "container_count": 8,
...          "event_time": f"2026-10-{i:02d}T20:00:00+08:00"}
...     e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
...     return rt.process(e, Source("zhijian.waste", 0, i, f"M{i}/generated"))
>>> [a for i in range(1, 16) for a in day(i, rng.gauss(600, 30))]
[]
>>> day(16, 250.0), day(17, 240.0)           # a day is judged once complete; one low day is not enough
([], [])
>>> [a] = day(18, 245.0)
>>> print(a.reason)
institution H3 generated 240 kg of medical waste on 2026-10-17, normal 593 ± 89 kg; evidence of a drop 5.8 (threshold 5)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.contracts.alert import Alert, Source
from models.rules.anomaly.cusum import Episode, GaussianCUSUM
from models.rules.anomaly.daily import DailyChart
from models.engine.detector import Context


@dataclass(frozen=True)
class GenerationLimits:
    """Configuration ``[waste.generation_anomaly]``."""

    threshold: float = 5.0
    slack_sd: float = 1.0  # tuned to drops of two deviations and more
    warmup_days: int = 7
    min_rel_sd: float = 0.15  # a small site's weight wobbles by more than its short history shows


class GenerationAnomalyDetector(DailyChart):
    name = "waste.generation_anomaly"
    version = "1"
    stream = "waste"
    Limits = GenerationLimits  # its configuration section [waste.generation_anomaly]
    key = "institution"
    key_field = "institution_id"
    fields = ("institution_id", "region", "event_type", "event_time", "weight_kg")

    def key_of(self, event: dict[str, Any]) -> str | None:
        return event["institution_id"] if event["event_type"] == "generated" else None

    def values(self, event: dict[str, Any]) -> dict[str, float] | None:
        return {"kg": event["weight_kg"]}

    def new_chart(self) -> Episode:
        lim = self.limits
        return Episode(GaussianCUSUM("down", k=lim.slack_sd, warmup=lim.warmup_days, min_rel_sd=lim.min_rel_sd),
                       lim.threshold)

    def judge(self, ctx: Context, chart: Episode, day: str, totals: dict[str, float], evidence: list[Source],
              now: float) -> list[Alert]:
        inst, kg = ctx.key, totals["kg"]
        mean, sd = chart.chart.mean, chart.chart.sd
        if not chart.observe({"y": kg}):
            return []
        evidence_sum = chart.chart.statistic
        reason = (f"institution {inst} generated {kg:.0f} kg of medical waste on {day}, normal {mean:.0f} ± "
                  f"{sd:.0f} kg; evidence of a drop {evidence_sum:.1f} (threshold {self.limits.threshold:g})")
        return [Alert.build(
            detector=self.name, version=self.version, key=f"{inst}@{day}",
            stream=self.stream, severity="medium", tier="violation", entity_kind="institution", entity_id=inst,
            institution_id=inst, region=ctx.state["ctx"]["region"], event_t=now,
            score=evidence_sum / self.limits.threshold, reason=reason,
            numbers={"day": day, "weight_kg": round(kg, 1), "normal_kg": round(mean, 1), "sd_kg": round(sd, 1),
                     "ratio": round(kg / mean, 3) if mean else None, "evidence": round(evidence_sum, 2)},
            evidence=evidence,
        )]
