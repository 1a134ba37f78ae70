"""Reports 报表: what a detector that judges a period publishes about every institution, alert or not.

A rule judged per month (the 双排名 ranking, the antimicrobial stewardship indicators) knows each
institution's figures whether they cross a threshold or not; the regulator wants them all — the console shows
each institution's rates against the targets and each month's ranking. The detector publishes them with
``ctx.publish(Report(...))`` when the period closes; the worker writes them to ``zhijian.reports`` (compacted,
key ``kind:institution:period``), so a period published again — after a redelivery, by another worker, after a
restart — replaces itself: the key is the report's identity, as the id is an alert's.

>>> r = Report(kind="antimicrobial_stewardship", detector="claim.antimicrobial_stewardship", version="1",
...            institution_id="H1", region="310104", period="2026-10", event_t=1793462400.0,
...            body={"outpatient_rate": {"value": 0.3, "target": 0.2}})
>>> r.key
b'antimicrobial_stewardship:H1:2026-10'
>>> d = orjson.loads(r.to_json())
>>> d["period"], d["closed_at"], d["body"]["outpatient_rate"]["value"]
('2026-10', '2026-10-31T16:00:00+00:00', 0.3)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from models.contracts.alert import iso

#: the kinds of report, each published by one detector (the console knows how to show each)
KINDS = ("double_ranking", "antimicrobial_stewardship", "antimicrobial_departments")


@dataclass(frozen=True, slots=True)
class Report:
    kind: str  # one of KINDS
    detector: str
    version: str
    institution_id: str
    region: str
    period: str  # the period judged: YYYY-MM for a month
    event_t: float  # when it closed (event time: the watermark that closed it)
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> bytes:
        """Kafka key: one record per kind, institution and period (the topic is compacted)."""
        return f"{self.kind}:{self.institution_id}:{self.period}".encode()

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, "kind": self.kind, "detector": self.detector,
                "detector_version": self.version, "institution_id": self.institution_id, "region": self.region,
                "period": self.period, "closed_at": iso(self.event_t), "body": self.body}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())
