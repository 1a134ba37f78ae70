"""Licences 经营许可 / 运输资质: waste handled by a facility or a carrier not licensed for its category on that day.

A disposal facility's licence (医疗废物经营许可证) lists the categories of 医疗废物分类目录 (2021)
it may take — infectious 感染性, sharps 损伤性, pathological 病理性, pharmaceutical 药物性,
chemical 化学性 — and the dates it holds; a carrier moves medical waste under a transport licence
(危险货物道路运输许可, 医疗废物集中处置单位的运输资质) of its own. At handover (交接) a manifest is
checked against both: a facility or a carrier not on the licence table, not licensed for the
category, or outside its licence's dates (the day of the handover in the record's own offset)
is reported — one alert per manifest and party (超范围处置 for a facility, 非法转运 for a
carrier). Each table is configuration; an empty one is not judged (the facilities' table empty:
the rule is off for facilities, as before; the carriers' table empty: carriers are not judged).

A licence is a list of categories, or a table ``{categories = [...], valid_from = "YYYY-MM-DD",
valid_until = "YYYY-MM-DD"}`` (either date may be left out; both days count as valid).

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> table = LicenceTable({"FAC-1": ["infectious", "pathological"], "FAC-2": ["infectious"]},
...                      {"CR-1": {"categories": ["infectious", "pathological"], "valid_until": "2026-10-31"}})
>>> d = Runtime([CategoryMismatchDetector(table)])
>>> e = {"manifest_id": "M1", "event_type": "handed_over", "institution_id": "H1", "category": "pathological",
...      "weight_kg": 3.5, "container_count": 1, "carrier_id": "CR-1", "facility_id": "FAC-2",
...      "event_time": "2026-10-20T18:00:00+08:00", "_t": 1760954400.0}
>>> [a] = d.process(e, Source("zhijian.waste", 1, 4, "M1/handed_over"))
>>> a.entity_kind, a.entity_id, a.numbers["licensed"]
('facility', 'FAC-2', ['infectious'])
>>> print(a.reason)
facility FAC-2 is not licensed for pathological waste (licensed: infectious); manifest M1, 3.5 kg from H1 on 2026-10-20
>>> d.process({**e, "facility_id": "FAC-1"}, Source("zhijian.waste", 1, 5, "M1/handed_over"))
[]
>>> late = {**e, "manifest_id": "M2", "facility_id": "FAC-1", "event_time": "2026-11-02T18:00:00+08:00"}
>>> [a] = d.process(late, Source("zhijian.waste", 1, 6, "M2/handed_over"))
>>> a.entity_kind, a.entity_id, a.numbers["valid_until"]
('carrier', 'CR-1', '2026-10-31')
>>> print(a.reason)
carrier CR-1's licence ended on 2026-10-31; manifest M2, 3.5 kg of pathological waste from H1 on 2026-11-02
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class Licence:
    """One party's licence: the categories it may handle, and the days it holds (ISO dates; "" = open)."""

    categories: tuple[str, ...]
    valid_from: str = ""
    valid_until: str = ""

    def why_not(self, category: str, day: str) -> str | None:
        """Why this licence does not cover ``category`` on ``day`` (None: it does)."""
        if self.valid_from and day < self.valid_from:
            return f"licence starts on {self.valid_from}"
        if self.valid_until and day > self.valid_until:
            return f"licence ended on {self.valid_until}"
        if category not in self.categories:
            return f"is not licensed for {category} waste (licensed: {', '.join(self.categories)})"
        return None


def _licences(section: str, table: dict[str, Any]) -> dict[str, Licence]:
    out = {}
    for party, entry in table.items():
        if isinstance(entry, list):
            out[party] = Licence(tuple(entry))
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("categories"), list) \
                or set(entry) - {"categories", "valid_from", "valid_until"}:
            raise ValueError(f"[waste.category_mismatch] {section}.{party} should be a list of categories or "
                             f"{{categories = [...], valid_from = \"YYYY-MM-DD\", valid_until = \"YYYY-MM-DD\"}}")
        dates = [entry.get("valid_from", ""), entry.get("valid_until", "")]
        if not all(isinstance(x, str) and (not x or len(x) == 10 and x[4] == x[7] == "-") for x in dates):
            raise ValueError(f"[waste.category_mismatch] {section}.{party}: dates are written YYYY-MM-DD")
        out[party] = Licence(tuple(entry["categories"]), *dates)
    return out


@dataclass(frozen=True)
class LicenceTable:
    """Configuration ``[waste.category_mismatch]``: disposal facility id → its licence (``licences``), carrier id →
    its transport licence (``carriers``)."""

    licences: dict[str, Any] = field(default_factory=dict)
    carriers: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_facility", _licences("licences", self.licences))
        object.__setattr__(self, "_carrier", _licences("carriers", self.carriers))

    def judged(self) -> list[tuple[str, str, dict[str, Licence]]]:
        """(entity kind, event field, that party's licences) for every table that is not empty."""
        return [(kind, f"{kind}_id", table) for kind, table in (("facility", self._facility),  # type: ignore[attr-defined]
                                                               ("carrier", self._carrier)) if table]  # type: ignore[attr-defined]


class CategoryMismatchDetector(KeyedDetector):
    name = "waste.category_mismatch"
    version = "2"  # 2: carriers, and licence dates
    stream = "waste"
    Limits = LicenceTable  # its configuration section [waste.category_mismatch]
    key = None  # judges each event alone

    def __init__(self, table: LicenceTable | None = None) -> None:
        self.table = table or LicenceTable()
        self._judged = self.table.judged()

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        if event["event_type"] != "handed_over" or not self._judged:
            return []
        category, day, out = event["category"], event["event_time"][:10], []
        for kind, id_field, table in self._judged:
            party = event.get(id_field)
            if party is None:
                continue
            licence = table.get(party)
            if licence is None:
                why = f"{kind} {party} is not on the licence table"
            else:
                reason = licence.why_not(category, day)
                if reason is None:
                    continue
                why = f"{kind} {party}'s {reason}" if reason.startswith("licence") else f"{kind} {party} {reason}"
            what = f"{event['weight_kg']:g} kg" if "licensed:" in why else f"{event['weight_kg']:g} kg of {category} waste"
            out.append(Alert.build(
                detector=self.name, version=self.version,
                key=event["manifest_id"] if kind == "facility" else f"{event['manifest_id']}/{kind}",
                stream=self.stream, severity="high", tier="violation", entity_kind=kind, entity_id=party,
                institution_id=event["institution_id"], region=event.get("region", "unknown"),
                event_t=event["_t"], score=1.0,
                reason=f"{why}; manifest {event['manifest_id']}, {what} from {event['institution_id']} on {day}",
                numbers={"manifest_id": event["manifest_id"], "category": category, "weight_kg": event["weight_kg"],
                         "day": day, "licensed": None if licence is None else list(licence.categories),
                         "valid_from": None if licence is None else licence.valid_from or None,
                         "valid_until": None if licence is None else licence.valid_until or None,
                         "carrier_id": event.get("carrier_id"), "facility_id": event.get("facility_id")},
                evidence=[source],
            ))
        return out
