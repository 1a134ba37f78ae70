"""Excess usage 超常预警: a prescriber's antimicrobial prescribing far above their own history.

临床用药超常预警 asks for dynamic monitoring of drug volumes against history; no national
number exists, so the normal is learned. Each prescriber's day is the share of their
outpatient, emergency and long-term prescriptions holding an antimicrobial (ATC J01); a
binomial CUSUM (:mod:`models.anomaly.cusum`) accumulates the evidence that the share has
doubled against the baseline share learned from their own past days, and alerts when the
evidence crosses ``threshold`` — once per episode, re-armed when the evidence falls back to
zero. A prescriber with fewer than ``min_prescriptions`` prescriptions of history is not
judged (the national targets warn against units with under ~100 patient-days).

>>> import random
>>> from datetime import datetime
>>> from models.alert import Source
>>> rng = random.Random(4)
>>> d = ExcessUsageDetector()
>>> def day(d_index, share, n=50):
...     out = []
...     for i in range(n):
...         atc = "J01CA04" if rng.random() < share else "M01AE01"
...         e = {"prescription_id": f"RX{d_index}-{i}", "institution_id": "H1", "department": "IM",
...              "prescriber_id": "D9", "visit_type": "outpatient", "event_time": f"2026-10-{d_index:02d}T10:00:00+08:00",
...              "items": [{"drug_code": atc, "atc_code": atc}]}
...         e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp() + i
...         out += d.process(e, Source("zhijian.prescriptions", i % 4, i, e["prescription_id"]))
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

from models.alert import Alert, Source
from models.anomaly.cusum import BinomialCUSUM, Episode
from models.anomaly.daily import DailyTotals, Day


@dataclass(frozen=True)
class ExcessUsageConfig:
    """Configuration ``[prescription.excess_usage]``."""

    atc_prefixes: list[str] = field(default_factory=lambda: ["J01"])
    ratio: float = 2.0  # the rise the chart is tuned to find
    threshold: float = 12.0  # evidence (log-likelihood ratio) that raises the alert
    min_prescriptions: int = 300  # history before a prescriber is judged (~a week for a busy one)


@dataclass(slots=True)
class _Prescriber:
    episode: Episode
    institution: str
    department: str
    episode_days: int = 0


class ExcessUsageDetector:
    name = "prescription.excess_usage"
    version = "1"
    stream = "prescription"
    Limits = ExcessUsageConfig  # its configuration section [prescription.excess_usage]
    needs_partitions = True  # told the stream's partition count (daily charts wait for every partition)

    def __init__(self, config: ExcessUsageConfig | None = None, partitions: int | None = None) -> None:
        self.config = config or ExcessUsageConfig()
        self._days: DailyTotals[Source] = DailyTotals(partitions=partitions)  # the stream's partition count
        self._prescribers: dict[str, _Prescriber] = {}
        self._prefixes = tuple(self.config.atc_prefixes)

    def process(self, event: dict[str, Any], source: Source) -> list[Alert]:
        if event["visit_type"] == "inpatient":
            return []
        doc = event["prescriber_id"]
        hit = any(it.get("atc_code", "").startswith(self._prefixes) for it in event["items"])
        if doc not in self._prescribers:
            c = self.config
            chart = BinomialCUSUM(c.ratio, min_trials=c.min_prescriptions)
            self._prescribers[doc] = _Prescriber(Episode(chart, c.threshold, event.get("region", "unknown")),
                                                 event["institution_id"], event["department"])
        closed_days = self._days.add(doc, event["event_time"], event["_t"], {"n": 1, "k": int(hit)},
                                     source.partition, source)
        return [a for who, closed in closed_days for a in self._judge(who, self._prescribers[who], closed, event["_t"])]

    def _judge(self, doc: str, p: _Prescriber, closed: Day[Source], now: float) -> list[Alert]:
        x = {"n": int(closed.totals["n"]), "k": int(closed.totals["k"])}
        chart = p.episode.chart
        baseline = chart.p0
        opened = p.episode.observe(x)
        evidence = chart.statistic
        p.episode_days = p.episode_days + 1 if evidence > 0 else 0
        if not opened:
            return []
        share = x["k"] / x["n"]
        reason = (f"prescriber {doc} ({p.institution}/{p.department}): antimicrobial share {100 * share:.0f} % "
                  f"({x['k']} of {x['n']}) on {closed.day}, baseline {100 * baseline:.0f} %; evidence of a "
                  f"{self.config.ratio:g}× rise {evidence:.1f} over {p.episode_days} days "
                  f"(threshold {self.config.threshold:g})")
        return [Alert.build(
            detector=self.name, version=self.version, key=f"{doc}@{closed.day}",
            stream=self.stream, severity="medium", tier="excess_usage", entity_kind="prescriber", entity_id=doc,
            institution_id=p.institution, region=p.episode.region, event_t=now, score=evidence / self.config.threshold,
            reason=reason,
            numbers={"day": closed.day, "prescriptions": x["n"], "antimicrobial": x["k"], "share": round(share, 4),
                     "baseline_share": round(baseline, 3), "evidence": round(evidence, 2),
                     "episode_days": p.episode_days, "threshold": self.config.threshold},
            evidence=closed.evidence,
        )]
