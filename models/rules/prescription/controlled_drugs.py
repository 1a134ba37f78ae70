"""Controlled drugs 麻醉药品和第一类精神药品处方限量: quantity limits for narcotics and class-I psychotropics.

处方管理办法 Art. 23–24 (outpatients, general patients): an injection is limited to one
dose, a controlled-release form to 7 days' supply, any other form to 3 days'; an inpatient
prescription to one day. The entity is the prescriber.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([ControlledDrugDetector()])
>>> rx = {"prescription_id": "RX1", "institution_id": "H1", "department": "ONC", "prescriber_id": "D2",
...       "visit_type": "outpatient", "_t": 1767225600.0,
...       "items": [{"drug_code": "M10", "name": "morphine 10 mg", "days_supply": 5, "quantity": 20,
...                  "dosage_form": "oral", "controlled_class": "narcotic"},
...                 {"drug_code": "P", "name": "paracetamol", "days_supply": 5, "quantity": 15,
...                  "controlled_class": "none"}]}
>>> [a] = d.process(rx, Source("zhijian.prescriptions", 0, 7, "RX1"))
>>> a.numbers["items"]
[{'drug_code': 'M10', 'controlled_class': 'narcotic', 'dosage_form': 'oral', 'days_supply': 5, 'limit_days': 3}]
>>> print(a.reason)
prescriber D2 (H1/ONC): outpatient prescription RX1 gives narcotic M10 for 5 d, limit 3 d (oral)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector

CONTROLLED = ("narcotic", "psychotropic_1")


@dataclass(frozen=True)
class ControlledLimits:
    """Days'-supply limits; configuration ``[prescription.controlled_drugs]``."""

    injection_days: float = 1  # one dose, at most a day
    controlled_release_days: float = 7
    other_days: float = 3
    inpatient_days: float = 1

    def limit(self, visit_type: str, form: str) -> float:
        if visit_type == "inpatient":
            return self.inpatient_days
        if form == "injection":
            return self.injection_days
        if form == "controlled_release":
            return self.controlled_release_days
        return self.other_days


class ControlledDrugDetector(KeyedDetector):
    name = "prescription.controlled_drugs"
    version = "1"
    stream = "prescription"
    Limits = ControlledLimits  # its configuration section [prescription.controlled_drugs]
    key = None  # judges each event alone

    def __init__(self, limits: ControlledLimits | None = None) -> None:
        self.limits = limits or ControlledLimits()

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        visit = event["visit_type"]
        offending = []
        for it in event["items"]:
            cls = it.get("controlled_class", "none")
            if cls not in CONTROLLED:
                continue
            form = it.get("dosage_form", "other")
            limit = self.limits.limit(visit, form)
            if it["days_supply"] > limit:
                offending.append({"drug_code": it["drug_code"], "controlled_class": cls,
                                  "dosage_form": form, "days_supply": it["days_supply"], "limit_days": limit})
        if not offending:
            return []
        worst = max(o["days_supply"] / o["limit_days"] for o in offending)
        what = "; ".join(f"{o['controlled_class'].replace('_', '-')} {o['drug_code']} for {o['days_supply']:g} d, "
                         f"limit {o['limit_days']:g} d ({o['dosage_form'].replace('_', '-')})" for o in offending)
        reason = (f"prescriber {event['prescriber_id']} ({event['institution_id']}/{event['department']}): "
                  f"{visit.replace('_', '-')} prescription {event['prescription_id']} gives {what}")
        return [Alert.build(
            detector=self.name, version=self.version, key=event["prescription_id"],
            stream=self.stream, severity="high", tier="violation",
            entity_kind="prescriber", entity_id=event["prescriber_id"],
            institution_id=event["institution_id"], region=event.get("region", "unknown"),
            event_t=event["_t"], score=worst, reason=reason,
            numbers={"visit_type": visit, "items": offending}, evidence=[source],
        )]
