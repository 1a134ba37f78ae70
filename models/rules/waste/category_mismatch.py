"""Category mismatch 超经营许可范围处置: waste handed to a facility not licensed for its category.

A disposal facility's licence (医疗废物经营许可证) lists the categories of 医疗废物分类目录 (2021)
it may take — infectious 感染性, sharps 损伤性, pathological 病理性, pharmaceutical 药物性,
chemical 化学性. A manifest sending waste to a facility without that category, or to a facility
not on the licence table at all, is reported at handover. The licence table is configuration;
with an empty table the rule is off. The entity is the facility.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([CategoryMismatchDetector(LicenceTable({"FAC-1": ["infectious", "pathological"], "FAC-2": ["infectious"]}))])
>>> e = {"manifest_id": "M1", "event_type": "handed_over", "institution_id": "H1", "category": "pathological",
...      "weight_kg": 3.5, "container_count": 1, "carrier_id": "CR-1", "facility_id": "FAC-2", "_t": 1767225600.0}
>>> [a] = d.process(e, Source("zhijian.waste", 1, 4, "M1/handed_over"))
>>> a.entity_id, a.numbers["licensed"]
('FAC-2', ['infectious'])
>>> print(a.reason)
facility FAC-2 is not licensed for pathological waste (licensed: infectious); manifest M1, 3.5 kg from H1
>>> d.process({**e, "facility_id": "FAC-1"}, Source("zhijian.waste", 1, 5, "M1/handed_over"))
[]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class LicenceTable:
    """Configuration ``[waste.category_mismatch]``: facility id → licensed categories."""

    licences: dict[str, list[str]] = field(default_factory=dict)


class CategoryMismatchDetector(KeyedDetector):
    name = "waste.category_mismatch"
    version = "1"
    stream = "waste"
    Limits = LicenceTable  # its configuration section [waste.category_mismatch]
    key = None  # judges each event alone

    def __init__(self, table: LicenceTable | None = None) -> None:
        self.table = table or LicenceTable()

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        if event["event_type"] != "handed_over" or not self.table.licences:
            return []
        facility = event.get("facility_id")
        if facility is None:
            return []
        licensed = self.table.licences.get(facility)
        category = event["category"]
        if licensed is not None and category in licensed:
            return []
        if licensed is None:
            why = f"facility {facility} is not on the licence table"
        else:
            why = f"facility {facility} is not licensed for {category} waste (licensed: {', '.join(licensed)})"
        reason = f"{why}; manifest {event['manifest_id']}, {event['weight_kg']:g} kg from {event['institution_id']}"
        return [Alert.build(
            detector=self.name, version=self.version, key=event["manifest_id"],
            stream=self.stream, severity="high", tier="violation", entity_kind="facility", entity_id=facility,
            institution_id=event["institution_id"], region=event.get("region", "unknown"),
            event_t=event["_t"], score=1.0, reason=reason,
            numbers={"manifest_id": event["manifest_id"], "category": category, "weight_kg": event["weight_kg"],
                     "licensed": licensed, "carrier_id": event.get("carrier_id")},
            evidence=[source],
        )]
