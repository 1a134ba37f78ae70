"""Excess usage 超常预警: a prescriber's antimicrobial prescribing far above their own history.

临床用药超常预警 asks for dynamic monitoring of drug volumes against history; no national
number exists, so the normal is learned. Each prescriber's day is the share of their
outpatient, emergency and long-term prescriptions holding an antimicrobial (ATC J01); a
binomial CUSUM (:mod:`models.rules.anomaly.cusum`) accumulates the evidence that the share has
doubled against the baseline share learned from their own past days, and alerts when the
evidence crosses ``threshold`` — once per episode, re-armed when the evidence falls back to
zero. A prescriber with fewer than ``min_prescriptions`` prescriptions of history is not
judged (the national targets warn against units with under ~100 patient-days).

>>> import random
>>> from datetime import datetime
>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> rng = random.Random(4)
>>> rt = Runtime([ExcessUsageDetector()])
>>> def day(d_index, share, n=50):
...     out = []
...     for i in range(n):
...         atc = "J01CA04" if rng.random() < share else "M01AE01"
...         e = {"prescription_id": f"RX{d_index}-{i}", "institution_id": "H1", "department": "IM",
...              "prescriber_id": "D9", "visit_type": "outpatient", "event_time": f"2026-10-{d_index:02d}T10:00:00+08:00",
...              "items": [{"drug_code": atc, "atc_code": atc}]}
...         e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp() + i
...         out += rt.process(e, Source("zhijian.prescriptions", i % 4, i, e["prescription_id"]))
...     return out
>>> [a for i in range(1, 15) for a in day(i, 0.12)]
[]
>>> alerts = [(i, a) for i in range(15, 25) for a in day(i, 0.12 * (1 + 2 * (i - 14) / 10))]
>>> [(i, a.entity_id, a.numbers["baseline_share"]) for i, a in alerts]
[(24, 'D9', 0.148)]
>>> print(alerts[0][1].reason)
prescriber D9 (H1/IM): antimicrobial share 24 % (12 of 50) on 2026-10-23, baseline 15 %; evidence of a 2× rise 12.9 over 6 days (threshold 12)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.contracts.alert import Alert, Source
from models.rules.anomaly.cusum import BinomialCUSUM, Episode
from models.rules.anomaly.daily import DailyChart
from models.engine.detector import Context


@dataclass(frozen=True)
class ExcessUsageConfig:
    """Configuration ``[prescription.excess_usage]``."""

    atc_prefixes: list[str] = field(default_factory=lambda: ["J01"])
    ratio: float = 2.0  # the rise the chart is tuned to find
    threshold: float = 12.0  # evidence (log-likelihood ratio) that raises the alert
    min_prescriptions: int = 300  # history before a prescriber is judged (~a week for a busy one)


class ExcessUsageDetector(DailyChart):
    name = "prescription.excess_usage"
    version = "1"
    stream = "prescription"
    Limits = ExcessUsageConfig  # its configuration section [prescription.excess_usage]
    key = "prescriber"
    key_field = "prescriber_id"
    fields = ("prescriber_id", "institution_id", "department", "region", "visit_type", "event_time", "items")

    def __init__(self, limits: ExcessUsageConfig | None = None) -> None:
        super().__init__(limits)
        self.config = self.limits
        self._prefixes = tuple(self.limits.atc_prefixes)

    def key_of(self, event: dict[str, Any]) -> str | None:
        return None if event["visit_type"] == "inpatient" else event["prescriber_id"]

    def values(self, event: dict[str, Any]) -> dict[str, float] | None:
        hit = any(str(it.get("atc_code", "")).startswith(self._prefixes) for it in event["items"])
        return {"n": 1, "k": int(hit)}

    def context(self, event: dict[str, Any]) -> dict[str, Any]:
        return {"institution": event["institution_id"], "department": event["department"],
                "region": event.get("region", "unknown")}

    def new_chart(self) -> Episode:
        c = self.limits
        return Episode(BinomialCUSUM(c.ratio, min_trials=c.min_prescriptions), c.threshold)

    def judge(self, ctx: Context, chart: Episode, day: str, totals: dict[str, float], evidence: list[Source],
              now: float) -> list[Alert]:
        x = {"n": int(totals["n"]), "k": int(totals["k"])}
        baseline = chart.chart.p0
        opened = chart.observe(x)
        evidence_llr = chart.chart.statistic
        st = ctx.state
        st["episode_days"] = st.get("episode_days", 0) + 1 if evidence_llr > 0 else 0
        if not opened:
            return []
        doc, who = ctx.key, st["ctx"]
        share = x["k"] / x["n"]
        reason = (f"prescriber {doc} ({who['institution']}/{who['department']}): antimicrobial share "
                  f"{100 * share:.0f} % ({x['k']} of {x['n']}) on {day}, baseline {100 * baseline:.0f} %; evidence of a "
                  f"{self.limits.ratio:g}× rise {evidence_llr:.1f} over {st['episode_days']} days "
                  f"(threshold {self.limits.threshold:g})")
        return [Alert.build(
            detector=self.name, version=self.version, key=f"{doc}@{day}",
            stream=self.stream, severity="medium", tier="excess_usage", entity_kind="prescriber", entity_id=doc,
            institution_id=who["institution"], region=who["region"], event_t=now,
            score=evidence_llr / self.limits.threshold, reason=reason,
            numbers={"day": day, "prescriptions": x["n"], "antimicrobial": x["k"], "share": round(share, 4),
                     "baseline_share": round(baseline, 3), "evidence": round(evidence_llr, 2),
                     "episode_days": st["episode_days"], "threshold": self.limits.threshold},
            evidence=evidence,
        )]
