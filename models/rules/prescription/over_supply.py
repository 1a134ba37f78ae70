"""Over-supply 超量开药: days' supply above the limit for the visit type.

Limits from 处方管理办法 Art. 19 and 长期处方管理规范 (2021): outpatient ≤ 7 days,
emergency ≤ 3 days, long-term prescriptions ≤ 12 weeks, and a long-term prescription over
4 weeks must carry a reason. Inpatient orders have no days'-supply limit here. A watch-listed prescriber
or institution (:mod:`models.rules.watchlist`) is held to the limits times its factor.
One alert per prescription, naming every offending item; the entity is the prescriber.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([OverSupplyDetector()])
>>> rx = {"prescription_id": "RX1", "institution_id": "H1", "department": "IM", "prescriber_id": "D7",
...       "patient": "P1", "visit_type": "outpatient", "_t": 1767225600.0,
...       "items": [{"drug_code": "A", "name": "amoxicillin", "days_supply": 14},
...                 {"drug_code": "B", "name": "ibuprofen", "days_supply": 3}]}
>>> [a] = d.process(rx, Source("zhijian.prescriptions", 1, 9, "RX1"))
>>> a.entity_id, a.score, a.numbers["items"]
('D7', 2.0, [{'drug_code': 'A', 'days_supply': 14, 'limit_days': 7}])
>>> print(a.reason)
prescriber D7 (H1/IM): outpatient prescription RX1 supplies A for 14 d, limit 7 d
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector
from models.rules.watchlist import watch_factor


@dataclass(frozen=True)
class SupplyLimits:
    """Days'-supply limits per visit type; configuration ``[prescription.over_supply]``."""

    outpatient_days: float = 7
    emergency_days: float = 3
    long_term_days: float = 84
    long_term_reason_after_days: float = 28

    def limit(self, visit_type: str, has_reason: bool) -> float | None:
        if visit_type == "outpatient":
            return self.outpatient_days
        if visit_type == "emergency":
            return self.emergency_days
        if visit_type == "long_term":
            return self.long_term_days if has_reason else self.long_term_reason_after_days
        return None


class OverSupplyDetector(KeyedDetector):
    name = "prescription.over_supply"
    version = "1"
    stream = "prescription"
    Limits = SupplyLimits  # its configuration section [prescription.over_supply]
    key = None  # judges each prescription alone

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        visit = event["visit_type"]
        limit = self.limits.limit(visit, bool(event.get("long_term_reason")))
        if limit is None:
            return []
        factor = watch_factor(ctx.reference, [("prescriber", event["prescriber_id"]),
                                              ("institution", event["institution_id"])], event.get("event_time", "")[:10])
        if factor < 1:  # a watch-listed prescriber or institution is held to a stricter limit
            limit *= factor
        offending = [
            {"drug_code": it["drug_code"], **({"atc_code": it["atc_code"]} if it.get("atc_code") else {}),
             "days_supply": it["days_supply"], "limit_days": limit}
            for it in event["items"]
            if it["days_supply"] > limit
        ]
        if not offending:
            return []
        worst = max(o["days_supply"] for o in offending)
        drugs = ", ".join(f"{o['drug_code']} for {o['days_supply']:g} d" for o in offending)
        note = " without a long-term reason" if visit == "long_term" and limit == self.limits.long_term_reason_after_days else ""
        watched = f" (watch-listed: limits × {factor:g})" if factor < 1 else ""
        reason = (f"prescriber {event['prescriber_id']} ({event['institution_id']}/{event['department']}): "
                  f"{visit.replace('_', '-')} prescription {event['prescription_id']} supplies {drugs}, "
                  f"limit {limit:g} d{note}{watched}")
        return [Alert.build(
            detector=self.name, version=self.version, key=event["prescription_id"],
            stream=self.stream, severity="medium", tier="violation",
            entity_kind="prescriber", entity_id=event["prescriber_id"],
            institution_id=event["institution_id"], region=event.get("region", "unknown"),
            event_t=event["_t"], score=worst / limit, reason=reason,
            numbers={"visit_type": visit, "limit_days": limit, "max_days_supply": worst, "items": offending,
                     **({"watch_factor": factor} if factor < 1 else {})},
            evidence=[source],
        )]
