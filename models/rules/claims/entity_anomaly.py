"""Institution profile anomaly 机构画像异常: a site's mean claim far above its own normal.

诱导/过度医疗 and upcoding show in an institution's rolling profile before any single claim
breaks a rule: the same patients, suddenly billed a scan, an ultrasound and a panel each.
Each institution's day is the mean amount of its outpatient and emergency claims (days with
fewer than ``min_claims`` are skipped), its deviation from the normal weighed by the square root of its claims over
the site's typical day's (at most 1: a quiet Sunday's mean wobbles more); an upward CUSUM (:mod:`models.rules.anomaly.cusum`) on the
daily mean, standardized by the mean and spread learned from its own past days, alerts when
the evidence crosses ``threshold`` — once per episode. The entity is the institution.

>>> import random
>>> from datetime import datetime
>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> rng = random.Random(5)
>>> rt = Runtime([EntityAnomalyDetector()])
>>> def day(i, mean, n=40):
...     out = []
...     for j in range(n):
...         e = {"claim_id": f"CL{i}-{j}", "claim_type": "outpatient", "institution_id": "K02", "region": "310106",
...              "event_time": f"2026-10-{i:02d}T10:00:00+08:00", "total_amount": max(5.0, rng.gauss(mean, 25))}
...         e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp() + j
...         out += rt.process(e, Source("zhijian.claims", j % 4, j, e["claim_id"]))
...     return out
>>> [a for i in range(1, 16) for a in day(i, 60)]
[]
>>> day(16, 380), [a.reason for a in day(17, 390)]
([], ['institution K02: mean claim 375.19 on 2026-10-16 over 40 claims (outpatient 40; judged from 10 a day), normal 60.06 ± 3.52; evidence of a rise 88.4 (threshold 5)'])
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from models.contracts.alert import Alert, Source
from models.rules.anomaly.cusum import Episode, GaussianCUSUM
from models.rules.anomaly.daily import DailyChart
from models.engine.detector import Context


@dataclass(frozen=True)
class ProfileLimits:
    """Configuration ``[claim.entity_anomaly]``."""

    threshold: float = 5.0
    slack_sd: float = 1.0
    warmup_days: int = 7
    min_claims: int = 10
    claim_types: list[str] = field(default_factory=lambda: ["outpatient", "emergency"])


class EntityAnomalyDetector(DailyChart):
    name = "claim.entity_anomaly"
    version = "2"  # 2: a day's deviation weighed by its claims against the site's typical day
    stream = "claim"
    Limits = ProfileLimits  # its configuration section [claim.entity_anomaly]
    key = "institution"
    key_field = "institution_id"
    fields = ("institution_id", "region", "claim_type", "event_time", "total_amount")

    def key_of(self, event: dict[str, Any]) -> str | None:
        return event["institution_id"] if event["claim_type"] in self.limits.claim_types else None

    def values(self, event: dict[str, Any]) -> dict[str, float] | None:
        return {"n": 1, "amount": event["total_amount"], f"n:{event['claim_type']}": 1}

    def new_chart(self) -> Episode:
        lim = self.limits
        return Episode(GaussianCUSUM("up", k=lim.slack_sd, warmup=lim.warmup_days), lim.threshold)

    def judge(self, ctx: Context, chart: Episode, day: str, totals: dict[str, float], evidence: list[Source],
              now: float) -> list[Alert]:
        if totals["n"] < self.limits.min_claims:
            return []
        inst, st = ctx.key, ctx.state
        n, mean_amount = int(totals["n"]), totals["amount"] / totals["n"]
        normal, sd = chart.chart.mean, chart.chart.sd
        # the mean of a quiet day (a Sunday's few claims) wobbles more than a busy day's: its deviation is weighed by
        # sqrt(claims / the site's typical day), so a weekend's chance is no evidence of a change of practice
        typical = st.get("typical_claims") or float(n)
        weight = min(1.0, math.sqrt(n / typical))
        st["typical_claims"] = typical + 0.1 * (n - typical)
        y = mean_amount if chart.chart.n == 0 else normal + (mean_amount - normal) * weight
        if not chart.observe({"y": y}):
            return []
        evidence_sum = chart.chart.statistic
        by_type = {k[2:]: int(v) for k, v in sorted(totals.items()) if k.startswith("n:")}
        types = ", ".join(f"{t} {c}" for t, c in by_type.items())
        reason = (f"institution {inst}: mean claim {mean_amount:.2f} on {day} over {n} claims ({types}; judged from "
                  f"{self.limits.min_claims} a day), normal {normal:.2f} ± {sd:.2f}; evidence of a rise "
                  f"{evidence_sum:.1f} (threshold {self.limits.threshold:g})")
        return [Alert.build(
            detector=self.name, version=self.version, key=f"{inst}@{day}",
            stream=self.stream, severity="medium", tier="violation", entity_kind="institution", entity_id=inst,
            institution_id=inst, region=ctx.state["ctx"]["region"], event_t=now,
            score=evidence_sum / self.limits.threshold, reason=reason,
            numbers={"day": day, "claims": n, "claims_by_type": by_type, "min_claims": self.limits.min_claims,
                     "mean_amount": round(mean_amount, 2), "normal": round(normal, 2),
                     "sd": round(sd, 2), "evidence": round(evidence_sum, 2)},
            evidence=evidence,
        )]
