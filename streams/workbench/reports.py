"""The monthly reports 报表 the console shows: every institution's antimicrobial stewardship rates against the
targets (抗菌药物临床应用指标) and its 双排名 drug ranking, as the workers publish them on ``zhijian.reports``
(:class:`models.contracts.report.Report`; compacted, key ``kind:institution:period``, the last record of a key wins),
with each institution's departments' outpatient and emergency rates from the prescriptions.

>>> book = Reports()
>>> book.add(b"antimicrobial_stewardship:H1:2026-10", orjson.dumps({"kind": "antimicrobial_stewardship",
...     "institution_id": "H1", "region": "310104", "period": "2026-10", "closed_at": "2026-11-01T06:00:00+00:00",
...     "body": {"outpatient_rate": {"value": 0.3, "numerator": 90, "denominator": 300, "target": 0.2, "judged": True}}}))
>>> book.add(b"double_ranking:H1:2026-09", orjson.dumps({"kind": "double_ranking", "institution_id": "H1",
...     "region": "310104", "period": "2026-09", "closed_at": "2026-10-01T06:00:00+00:00", "body": {"ranking": []}}))
>>> book.months()
['2026-10', '2026-09']
>>> [(r.name, r.cells["outpatient_rate"].over) for r in book.stewardship("2026-10")]
[('H1', True)]
>>> book.add(b"antimicrobial_stewardship:H1:2026-10", None); book.stewardship("2026-10")
[]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

#: the stewardship indicators in the order the page shows them (models.rules.claims.antimicrobial_stewardship)
INDICATORS = ("outpatient_rate", "emergency_rate", "inpatient_use_rate", "use_intensity")


@dataclass(frozen=True)
class Cell:
    """One indicator of one institution's month."""

    value: float
    numerator: float
    denominator: float
    target: float
    judged: bool  # enough visits or patient-days to be judged

    @property
    def over(self) -> bool:
        return self.judged and self.value > self.target

    @property
    def percent(self) -> bool:
        return self.target <= 1.0  # a rate (use intensity is DDD per 100 patient-days)


@dataclass(frozen=True)
class RatesRow:
    """One institution's (or one department's) indicators of a month."""

    name: str  # the institution, or the department
    region: str
    cells: dict[str, Cell]

    @classmethod
    def of(cls, name: str, region: str, rates: dict[str, dict[str, Any]]) -> "RatesRow":
        return cls(name, region, {n: Cell(float(x["value"]), float(x["numerator"]), float(x["denominator"]),
                                          float(x["target"]), bool(x["judged"]))
                                  for n, x in rates.items() if n in INDICATORS})

    @property
    def over(self) -> int:
        return sum(c.over for c in self.cells.values())


def _over_first(rows: list[RatesRow]) -> list[RatesRow]:
    return sorted(rows, key=lambda row: (-row.over, row.name))


class Reports:
    """kind → (period, institution) → the latest report record."""

    def __init__(self) -> None:
        self.by_kind: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}

    def add(self, key: bytes | None, value: bytes | None) -> None:
        """One record of zhijian.reports: a report set or replaced, or (a tombstone) removed."""
        if key is None:
            return
        kind, _, rest = key.decode("utf-8", "replace").partition(":")
        institution, _, period = rest.rpartition(":")
        if value is None:
            self.by_kind.get(kind, {}).pop((period, institution), None)
            return
        record = orjson.loads(value)
        if not isinstance(record, dict) or not isinstance(record.get("body"), dict):
            raise ValueError("a report is an object with a body")
        self.by_kind.setdefault(kind, {})[(period, institution)] = record

    def months(self) -> list[str]:
        """Every period some report covers, the latest first."""
        return sorted({p for reports in self.by_kind.values() for p, _ in reports}, reverse=True)

    def _of(self, kind: str, month: str, institution: str = "") -> list[tuple[str, dict[str, Any]]]:
        """(institution, record) of the reports of ``kind`` for ``month`` (of one institution when named)."""
        return sorted((inst, r) for (period, inst), r in self.by_kind.get(kind, {}).items()
                      if period == month and (not institution or inst == institution))

    def stewardship(self, month: str) -> list[RatesRow]:
        """Each institution's indicators of ``month``: those over a target first, then by institution."""
        return _over_first([RatesRow.of(inst, r.get("region", ""), r["body"])
                            for inst, r in self._of("antimicrobial_stewardship", month)])

    def departments(self, month: str, institution: str = "") -> list[tuple[str, list[RatesRow]]]:
        """Per institution (of one when named), its departments' outpatient and emergency rates of ``month``
        (``prescription.antimicrobial_departments``): institutions with a department over a target first."""
        out = [(inst, _over_first([RatesRow.of(dept, r.get("region", ""), rates)
                                   for dept, rates in r["body"]["departments"].items()]))
               for inst, r in self._of("antimicrobial_departments", month, institution)]
        return sorted(out, key=lambda x: (-sum(row.over for row in x[1]), x[0]))

    def rankings(self, month: str, institution: str = "") -> list[dict[str, Any]]:
        """The 双排名 reports of ``month`` (of one institution when named), by institution."""
        return [r for _, r in self._of("double_ranking", month, institution)]
