"""Too many drugs 大处方: more drugs on one prescription than the limit.

处方管理办法: a Western or Chinese-patent-medicine prescription holds at most 5 drugs.
Inpatient orders are not prescriptions in this sense and are not checked. The entity is
the prescriber; a watch-listed one (:mod:`models.rules.watchlist`) is held to the limit times its factor.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([TooManyDrugsDetector()])
>>> rx = {"prescription_id": "RX1", "institution_id": "H1", "department": "GP", "prescriber_id": "D7",
...       "visit_type": "outpatient", "_t": 1767225600.0,
...       "items": [{"drug_code": c, "name": c} for c in "ABCDEFG"]}
>>> [a] = d.process(rx, Source("zhijian.prescriptions", 0, 3, "RX1"))
>>> a.entity_id, a.numbers["drugs"], a.numbers["limit"]
('D7', 7, 5)
>>> print(a.reason)
prescriber D7 (H1/GP): outpatient prescription RX1 holds 7 drugs, limit 5
>>> d.process({**rx, "items": rx["items"][:5]}, Source("zhijian.prescriptions", 0, 4, "RX1"))
[]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector
from models.rules.watchlist import watch_factor


@dataclass(frozen=True)
class DrugCountLimit:
    """Configuration ``[prescription.too_many_drugs]``."""

    max_drugs: int = 5


class TooManyDrugsDetector(KeyedDetector):
    name = "prescription.too_many_drugs"
    version = "1"
    stream = "prescription"
    Limits = DrugCountLimit  # its configuration section [prescription.too_many_drugs]
    key = None  # judges each event alone

    def __init__(self, limit: DrugCountLimit | None = None) -> None:
        self.limit = limit or DrugCountLimit()

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        if event["visit_type"] == "inpatient":
            return []
        drugs = len({it["drug_code"] for it in event["items"]})
        factor = watch_factor(ctx.reference, [("prescriber", event["prescriber_id"]),
                                              ("institution", event["institution_id"])], event.get("event_time", "")[:10])
        limit = self.limit.max_drugs * factor if factor < 1 else self.limit.max_drugs  # watch-listed: stricter
        if drugs <= limit:
            return []
        visit = event["visit_type"].replace("_", "-")
        watched = f" (watch-listed: limits × {factor:g})" if factor < 1 else ""
        reason = (f"prescriber {event['prescriber_id']} ({event['institution_id']}/{event['department']}): "
                  f"{visit} prescription {event['prescription_id']} holds {drugs} drugs, limit {limit:g}{watched}")
        return [Alert.build(
            detector=self.name, version=self.version, key=event["prescription_id"],
            stream=self.stream, severity="low", tier="violation",
            entity_kind="prescriber", entity_id=event["prescriber_id"],
            institution_id=event["institution_id"], region=event.get("region", "unknown"),
            event_t=event["_t"], score=drugs / limit, reason=reason,
            numbers={"drugs": drugs, "limit": limit, "drug_codes": sorted({it["drug_code"] for it in event["items"]}),
                     "atc_codes": sorted({it.get("atc_code", "") for it in event["items"]} - {""}),
                     **({"watch_factor": factor} if factor < 1 else {})},
            evidence=[source],
        )]
