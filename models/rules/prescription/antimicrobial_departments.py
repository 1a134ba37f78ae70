"""Antimicrobial prescription rates per department 科室抗菌药物使用率: the stewardship indicators' outpatient and
emergency rates broken down by the department that wrote the prescriptions, each month, for every institution.

The national indicators (抗菌药物临床应用管理评价指标) are judged per institution on the settled claims
(:mod:`models.rules.claims.antimicrobial_stewardship`), which carry no department; hospitals hold their departments to
the same targets (科室考核) and a regulator drilling into an institution over its target asks which department
drives it. Prescriptions name their department: per institution (re-keyed) and calendar month, this counts each
department's outpatient and emergency prescriptions and those with a systemic antibacterial (an item whose ATC code
starts with ``J01``), a prescription sent twice within a few days once (:mod:`models.rules.months`). When the month closes (its end
plus ``grace_s``) it publishes a :class:`~models.contracts.report.Report` (kind ``antimicrobial_departments``) of
every department's rates against the targets, ``judged`` once a department wrote ``min_prescriptions`` of the kind.

It raises no alert: the targets are the institution's, and the claims rule raises it; a department's rate is the
evidence an analyst reads beside it (the workbench's reports page). A prescription stands for a visit here (a visit
writing two prescriptions counts twice), and inpatient use and intensity need patient-days, which prescriptions do
not carry.

>>> from datetime import datetime
>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> rt = Runtime([DepartmentRatesDetector(DepartmentRatesLimits(min_prescriptions=50))])
>>> n = 0
>>> def rx(day, dept, kind, atc):
...     global n
...     n += 1
...     e = {"prescription_id": f"RX{n}", "institution_id": "H1", "department": dept, "region": "310104",
...          "visit_type": kind, "event_time": f"2026-10-{day:02d}T10:00:00+08:00",
...          "items": [{"drug_code": "X", "atc_code": atc}]}
...     e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
...     return rt.process(e, Source("zhijian.prescriptions", 0, n, e["prescription_id"]))
>>> out = []
>>> for day in range(1, 31):
...     for i in range(4):     # respiratory: one prescription in four with an antibacterial
...         out += rx(day, "RESP", "outpatient", "J01CA04" if i == 0 else "R05CB01")
...     out += rx(day, "ENT", "emergency", "J01DD04" if day % 2 else "N02BE01")   # 30 emergency, 15 of them
>>> out += rx(1, "RESP", "outpatient", "R05CB01")    # 1 October again: late, counted in October still
>>> out += rt.advance(datetime.fromisoformat("2026-11-01T07:00:00+08:00").timestamp())
>>> out
[]
>>> [report] = rt.reports
>>> report.period, report.body["departments"]["RESP"]["outpatient_rate"]
('2026-10', {'value': 0.2479, 'numerator': 30, 'denominator': 121, 'target': 0.2, 'judged': True})
>>> report.body["departments"]["ENT"]["emergency_rate"]["judged"], report.body["departments"]["ENT"]["emergency_rate"]["value"]
(False, 0.5)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.contracts.alert import Alert, Source
from models.contracts.report import Report
from models.engine.detector import Context, KeyedDetector
from models.rules import months

#: visit type → (the indicator, its counters' index in a department's [n, k] pairs)
KINDS = {"outpatient": ("outpatient_rate", 0), "emergency": ("emergency_rate", 2)}


@dataclass(frozen=True)
class DepartmentRatesLimits:
    """Configuration ``[prescription.antimicrobial_departments]``."""

    outpatient_rate: float = 0.20  # the targets a department's rates are shown against (the institution's)
    emergency_rate: float = 0.40
    min_prescriptions: int = 100  # prescriptions of a kind in the month below which a department's rate is not judged
    atc_prefixes: list[str] = field(default_factory=lambda: ["J01"])  # systemic antibacterials


class DepartmentRatesDetector(KeyedDetector):
    name = "prescription.antimicrobial_departments"
    version = "1"
    stream = "prescription"
    Limits = DepartmentRatesLimits  # its configuration section [prescription.antimicrobial_departments]
    key = "institution"
    key_field = "institution_id"
    fields = ("institution_id", "department", "region", "visit_type", "event_time", "items")
    grace_s = 6 * 3600.0  # a month closes six hours after its end (uploads come in batches)
    retention_s = 40 * 86400.0
    raised_after_evidence = True  # it publishes when the month closes (and raises nothing)

    @classmethod
    def _conformance_params(cls) -> dict[str, Any]:
        # the last five days of October, closed on 1 November 06:00, and the first of November
        return {"days": 6.5, "scale": 0.2, "start": "2026-10-27"}

    def __init__(self, limits: DepartmentRatesLimits | None = None) -> None:
        super().__init__(limits)
        self._prefixes = tuple(self.limits.atc_prefixes)

    def key_of(self, event: dict[str, Any]) -> str | None:
        return event["institution_id"] if event["visit_type"] in KINDS else None

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        m = months.month_of(ctx, event, self.grace_s, dict)
        if m is None:
            return []  # late: that month was published
        if not months.first_seen(ctx.state, event["event_time"][:10], source.event_id):
            return []  # the same prescription again: counted once
        counts = m.setdefault(event["department"], [0, 0, 0, 0])  # outpatient n, k; emergency n, k
        i = KINDS[event["visit_type"]][1]
        counts[i] += 1
        if any(str(it.get("atc_code", "")).startswith(self._prefixes) for it in event["items"]):
            counts[i + 1] += 1
        return []

    def on_timer(self, ctx: Context, month: str, t: float) -> list[Alert]:
        st = ctx.state
        m = months.close(st, month)
        c = self.limits
        departments: dict[str, dict[str, Any]] = {}
        for dept, counts in sorted(m.items()):
            rates = {}
            for name, i in KINDS.values():
                n, k = counts[i], counts[i + 1]
                if n:
                    rates[name] = {"value": round(k / n, 4), "numerator": k, "denominator": n,
                                   "target": getattr(c, name), "judged": n >= c.min_prescriptions}
            departments[dept] = rates
        if departments:
            ctx.publish(Report(kind="antimicrobial_departments", detector=self.name, version=self.version,
                               institution_id=ctx.key, region=st.get("region", "unknown"), period=month,
                               event_t=t, body={"departments": departments}))
        return []
