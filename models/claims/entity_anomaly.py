"""Institution profile anomaly 机构画像异常: a site's mean claim far above its own normal.

诱导/过度医疗 and upcoding show in an institution's rolling profile before any single claim
breaks a rule: the same patients, suddenly billed a scan, an ultrasound and a panel each.
Each institution's day is the mean amount of its outpatient and emergency claims (days with
fewer than ``min_claims`` are skipped); an upward CUSUM (:mod:`models.anomaly.cusum`) on the
daily mean, standardized by the mean and spread learned from its own past days, alerts when
the evidence crosses ``threshold`` — once per episode. The entity is the institution.

>>> import random
>>> from datetime import datetime
>>> from models.alert import Source
>>> rng = random.Random(5)
>>> d = EntityAnomalyDetector()
>>> def day(i, mean, n=40):
...     out = []
...     for j in range(n):
...         e = {"claim_id": f"CL{i}-{j}", "claim_type": "outpatient", "institution_id": "K02", "region": "310106",
...              "event_time": f"2026-10-{i:02d}T10:00:00+08:00", "total_amount": max(5.0, rng.gauss(mean, 25))}
...         e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp() + j
...         out += d.process(e, Source("zhijian.claims", j % 4, j, e["claim_id"]))
...     return out
>>> [a for i in range(1, 16) for a in day(i, 60)]
[]
>>> day(16, 380), [a.reason for a in day(17, 390)]
([], ['institution K02: mean outpatient claim 375.19 on 2026-10-16 (40 claims), normal 60.06 ± 3.52; evidence of a rise 88.4 (threshold 5)'])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.alert import Alert, Source
from models.anomaly.cusum import Episode, GaussianCUSUM
from models.anomaly.daily import DailyTotals, Day


@dataclass(frozen=True)
class ProfileLimits:
    """Configuration ``[claim.entity_anomaly]``."""

    threshold: float = 5.0
    slack_sd: float = 1.0
    warmup_days: int = 7
    min_claims: int = 10
    claim_types: list[str] = field(default_factory=lambda: ["outpatient", "emergency"])


class EntityAnomalyDetector:
    name = "claim.entity_anomaly"
    version = "1"
    stream = "claim"
    Limits = ProfileLimits  # its configuration section [claim.entity_anomaly]
    needs_partitions = True  # told the stream's partition count (daily charts wait for every partition)

    def __init__(self, limits: ProfileLimits | None = None, partitions: int | None = None) -> None:
        self.limits = limits or ProfileLimits()
        self._days: DailyTotals[Source] = DailyTotals(partitions=partitions)  # the stream's partition count
        self._sites: dict[str, Episode] = {}

    def process(self, event: dict[str, Any], source: Source) -> list[Alert]:
        if event["claim_type"] not in self.limits.claim_types:
            return []
        inst = event["institution_id"]
        if inst not in self._sites:
            lim = self.limits
            self._sites[inst] = Episode(GaussianCUSUM("up", k=lim.slack_sd, warmup=lim.warmup_days),
                                        lim.threshold, event.get("region", "unknown"))
        closed_days = self._days.add(inst, event["event_time"], event["_t"], {"n": 1, "amount": event["total_amount"]},
                                     source.partition, source)
        return [a for who, closed in closed_days for a in self._judge(who, self._sites[who], closed, event["_t"])]

    def _judge(self, inst: str, site: Episode, closed: Day[Source], now: float) -> list[Alert]:
        if closed.totals["n"] < self.limits.min_claims:
            return []
        n, mean_amount = int(closed.totals["n"]), closed.totals["amount"] / closed.totals["n"]
        normal, sd = site.chart.mean, site.chart.sd
        if not site.observe({"y": mean_amount}):
            return []
        evidence = site.chart.statistic
        reason = (f"institution {inst}: mean outpatient claim {mean_amount:.2f} on {closed.day} ({n} claims), normal "
                  f"{normal:.2f} ± {sd:.2f}; evidence of a rise {evidence:.1f} (threshold {self.limits.threshold:g})")
        return [Alert.build(
            detector=self.name, version=self.version, key=f"{inst}@{closed.day}",
            stream=self.stream, severity="medium", tier="violation", entity_kind="institution", entity_id=inst,
            institution_id=inst, region=site.region, event_t=now, score=evidence / self.limits.threshold,
            reason=reason,
            numbers={"day": closed.day, "claims": n, "mean_amount": round(mean_amount, 2), "normal": round(normal, 2),
                     "sd": round(sd, 2), "evidence": round(evidence, 2)},
            evidence=closed.evidence,
        )]
