"""The monthly reports 报表 the console shows: every institution's antimicrobial stewardship rates against the
targets (抗菌药物临床应用指标) and its 双排名 drug ranking, as the workers publish them on ``zhijian.reports``
(:class:`models.contracts.report.Report`; compacted, key ``kind:institution:period``, the last record of a key wins),
with each institution's departments' outpatient and emergency rates from the prescriptions and inpatient
indicators from the stays that name their department.

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

import io
from dataclasses import dataclass
from typing import Any, Callable

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
        """Per institution (of one when named), its departments' indicators of ``month``: the outpatient and
        emergency rates from the prescriptions (``prescription.antimicrobial_departments``), the inpatient use rate
        and use intensity from the stays that name the department they were discharged from (出院科别,
        ``claim.antimicrobial_stewardship``); institutions with a department over a target first.

        >>> b = Reports()
        >>> cell = {"value": 0.7, "numerator": 70, "denominator": 100, "target": 0.6, "judged": True}
        >>> b.add(b"antimicrobial_stewardship:H1:2026-10", orjson.dumps({"institution_id": "H1", "period": "2026-10",
        ...     "body": {"inpatient_use_rate": cell, "departments": {"RESP": {"inpatient_use_rate": cell}}}}))
        >>> [(inst, [(row.name, sorted(row.cells), row.over) for row in rows]) for inst, rows in b.departments("2026-10")]
        [('H1', [('RESP', ['inpatient_use_rate'], 1)])]
        """
        merged: dict[str, dict[str, dict[str, Any]]] = {}  # institution → department → indicator → cell
        region: dict[str, str] = {}
        for kind in ("antimicrobial_departments", "antimicrobial_stewardship"):
            for inst, r in self._of(kind, month, institution):
                region.setdefault(inst, r.get("region", ""))
                for dept, rates in (r["body"].get("departments") or {}).items():
                    merged.setdefault(inst, {}).setdefault(dept, {}).update(rates)
        out = [(inst, _over_first([RatesRow.of(dept, region[inst], rates) for dept, rates in depts.items()]))
               for inst, depts in merged.items()]
        return sorted(out, key=lambda x: (-sum(row.over for row in x[1]), x[0]))

    def rankings(self, month: str, institution: str = "") -> list[dict[str, Any]]:
        """The 双排名 reports of ``month`` (of one institution when named), by institution."""
        return [r for _, r in self._of("double_ranking", month, institution)]


#: the indicators' labels as the page shows them (translated by the caller's gettext)
LABELS = {"outpatient_rate": "outpatient rate", "emergency_rate": "emergency rate",
          "inpatient_use_rate": "inpatient use rate", "use_intensity": "use intensity"}


def month_workbook(book: Reports, month: str, gettext: Callable[[str], str]) -> bytes:
    """A month's reports as the workbook a supervisor files or forwards (XlsxWriter, as the case report): the
    stewardship indicators of every institution, its departments' rates and the 双排名 rankings, one sheet each,
    with the numerators, denominators and targets the page shows on hover. An indicator over its target is marked
    over; one on too few visits or patient-days is marked not judged and has no over mark.

    >>> import zipfile
    >>> b = Reports()
    >>> b.add(b"antimicrobial_stewardship:H1:2026-10", orjson.dumps({"kind": "antimicrobial_stewardship",
    ...     "institution_id": "H1", "region": "310104", "period": "2026-10", "body": {"outpatient_rate":
    ...     {"value": 0.3, "numerator": 90, "denominator": 300, "target": 0.2, "judged": True}}}))
    >>> x = zipfile.ZipFile(io.BytesIO(month_workbook(b, "2026-10", str)))
    >>> sum(n.startswith("xl/worksheets/sheet") for n in x.namelist()), "H1" in x.read("xl/sharedStrings.xml").decode()
    (3, True)
    """
    import xlsxwriter

    _ = gettext
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
                                   "strings_to_urls": False})
    head = wb.add_format({"bold": True, "bg_color": "#243b55", "font_color": "#ffffff", "text_wrap": True})
    rate, number = wb.add_format({"num_format": "0.0%"}), wb.add_format({"num_format": "#,##0.00"})

    def rates_sheet(title: str, first: list[str], rows: list[tuple[list[str], RatesRow]], names: tuple[str, ...]):
        sheet = wb.add_worksheet(title)
        cols = list(first)
        parts = (_("numerator"), _("denominator"), _("target"), _("judged"))
        for n in names:
            label = _(LABELS[n])
            cols += [label, *(f"{label}: {part}" for part in parts)]
        sheet.write_row(0, 0, cols, head)
        for r, (lead, row) in enumerate(rows, start=1):
            sheet.write_row(r, 0, lead)
            c = len(lead)
            for n in names:
                cell = row.cells.get(n)
                if cell is not None:
                    fmt = rate if cell.percent else number
                    sheet.write_number(r, c, cell.value, fmt)
                    sheet.write_number(r, c + 1, cell.numerator)
                    sheet.write_number(r, c + 2, cell.denominator)
                    sheet.write_number(r, c + 3, cell.target, fmt)
                    sheet.write_string(r, c + 4, _("over") if cell.over else (_("yes") if cell.judged
                                                                               else _("not judged")))
                c += 5
        sheet.freeze_panes(1, len(first))
        sheet.autofilter(0, 0, max(len(rows), 1), len(cols) - 1)
        sheet.set_column(0, len(first) - 1, 14)
        sheet.set_column(len(first), len(cols) - 1, 11)

    rates_sheet(_("Stewardship"), [_("institution"), _("region")],  # a sheet's name: 31 characters at most
                [([row.name, row.region], row) for row in book.stewardship(month)], INDICATORS)
    rates_sheet(_("Departments"), [_("institution"), _("department")],
                [([inst, row.name], row) for inst, rows in book.departments(month) for row in rows], INDICATORS)
    sheet = wb.add_worksheet(_("Double ranking"))
    cols = [_("institution"), _("rank"), _("drug"), _("new"), _("amount ¥"), _("a prescribing day"),
            _("the month before"), _("top prescribers")]
    sheet.write_row(0, 0, cols, head)
    r = 0
    for report in book.rankings(month):
        for rank, d in enumerate(report["body"].get("ranking", []), start=1):
            r += 1
            sheet.write_string(r, 0, report["institution_id"])
            sheet.write_number(r, 1, rank)
            sheet.write_string(r, 2, str(d["drug"]))
            sheet.write_string(r, 3, _("new") if d.get("new") else "")
            sheet.write_number(r, 4, float(d["amount"]), number)
            for c, k in ((5, "per_day"), (6, "previous_per_day")):
                if d.get(k) is not None:
                    sheet.write_number(r, c, float(d[k]), number)
            sheet.write_string(r, 7, ", ".join(f"{p[0]} ({p[1]:,.0f})" for p in d.get("prescribers", [])))
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(r, 1), len(cols) - 1)
    sheet.set_column(0, 6, 13)
    sheet.set_column(7, 7, 48)
    wb.close()
    return buf.getvalue()
