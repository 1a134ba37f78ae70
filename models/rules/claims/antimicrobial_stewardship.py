"""Antimicrobial stewardship 抗菌药物临床应用指标: an institution's monthly rates against the national targets.

The national targets for antimicrobial use (抗菌药物临床应用管理办法 and the yearly 抗菌药物临床应用管理评价指标)
are judged here on the settled claims, as the indicators are defined: per institution and calendar month,

* outpatient prescription rate 门诊患者抗菌药物使用率 — outpatient visits billing an antimicrobial (ATC J01) among
  outpatient visits, target ≤ 20 %;
* emergency prescription rate 急诊患者抗菌药物使用率 — the same for emergency visits, ≤ 40 %;
* inpatient use rate 住院患者抗菌药物使用率 — discharged patients whose stay billed an antimicrobial among those
  discharged, ≤ 60 %;
* use intensity 抗菌药物使用强度 — defined daily doses (DDD) of antimicrobials billed to the discharged patients per
  100 patient-days, ≤ 40.

The DDDs come from the region's drug dictionary (``drugs``: the region's drug code → its ATC code, grams of active
substance per billed unit and route) and the WHO defined daily doses (``ddd_g``: ATC → grams per day by route, the
common systemic antimicrobials shipped as the default); a region without a dictionary is not judged. A unit with
fewer than ``min_visits`` visits of a kind, or ``min_patient_days`` patient-days, in the month is not judged (the
targets warn against small denominators). Corrections: a void takes its claim back out of its day; a replacement
counts only after a void of its claim (a refund 退费: withdrawn, then settled again) — a price correction does not
change who was given an antimicrobial. A month is judged when the first day of a later month closes; one alert per
institution, month and indicator over its target, with every indicator of the month in its numbers. Every
institution's month is also published, over its targets or not, as a :class:`~models.contracts.report.Report`
(``zhijian.reports``, kind ``antimicrobial_stewardship``): the workbench's page of the rates against the targets.
A stay naming the department it was discharged from (``discharge_department``, 出院科别) also counts for that
department: the report's ``departments`` hold each one's inpatient use rate and use intensity, judged as the
institution's (not under ``min_patient_days``), and an inpatient indicator's alert names the departments over it.

>>> from datetime import datetime
>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> drugs = {"AMOX": {"atc": "J01CA04", "grams_per_unit": 0.5, "route": "O"},
...          "CRO": {"atc": "J01DD04", "grams_per_unit": 1.0, "route": "P"}}
>>> rt = Runtime([StewardshipDetector(StewardshipLimits(drugs=drugs))])
>>> n = [0]
>>> def claim(day, kind, codes, qty=6, **extra):
...     n[0] += 1
...     e = {"claim_id": f"C{n[0]}", "institution_id": "H1", "region": "310104", "claim_type": kind,
...          "event_time": f"2026-10-{day:02d}T10:00:00+08:00", "patient": f"P{n[0]}",
...          "items": [{"item_code": c, "quantity": qty, "amount": 10.0} for c in codes], **extra}
...     e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
...     return rt.process(e, Source("zhijian.claims", 0, n[0], e["claim_id"]))
>>> out = []
>>> for day in range(1, 31):
...     for i in range(10):                                  # 300 outpatient visits, 90 with amoxicillin: 30 %
...         out += claim(day, "outpatient", ["AMOX"] if i < 3 else ["IBU"])
...     out += claim(day, "inpatient", ["CRO"] if day % 2 else ["OME"], qty=4, discharge_department="RESP" if day % 2
...                  else "IM", admission_date=f"2026-10-{max(1, day - 4):02d}", discharge_date=f"2026-10-{day:02d}")
>>> out
[]
>>> claim(1, "outpatient", ["IBU"], event_time="2026-11-01T10:00:00+08:00")
[]
>>> [a] = claim(2, "outpatient", ["IBU"], event_time="2026-11-02T07:00:00+08:00")   # 1 November has closed
>>> print(a.reason)
institution H1 in 2026-10: outpatient antimicrobial prescription rate 30.0 % (90 of 300 visits), target ≤ 20 %; inpatient use rate 50.0 % (15 of 30 discharged); use intensity 27.0 DDD per 100 patient-days (30 DDD over 111 patient-days)
>>> a.numbers["indicator"], a.numbers["value"], a.numbers["target"], a.numbers["inpatient_use_rate"]["value"]
('outpatient_rate', 0.3, 0.2, 0.5)
>>> [(r.kind, r.institution_id, r.period) for r in rt.reports], sorted(rt.reports[0].body)
([('antimicrobial_stewardship', 'H1', '2026-10')], ['departments', 'inpatient_use_rate', 'outpatient_rate', 'use_intensity'])
>>> resp = rt.reports[0].body["departments"]["RESP"]          # 15 stays of 4 days at most: not judged
>>> resp["inpatient_use_rate"]
{'value': 1.0, 'numerator': 15, 'denominator': 15, 'target': 0.6, 'judged': False}
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from models.contracts.alert import Alert, Source
from models.contracts.report import Report
from models.engine.detector import Context
from models.rules.anomaly.daily import DailyChart
from models.rules.claims import versions

#: WHO defined daily doses (ATC/DDD Index) of common systemic antimicrobials, grams a day by route (O oral,
#: P parenteral): the default of ``ddd_g``; a region adds its own.
WHO_DDD_G: dict[str, dict[str, float]] = {
    "J01CA04": {"O": 1.5, "P": 3.0},  # amoxicillin
    "J01CR02": {"O": 1.5, "P": 3.0},  # amoxicillin and clavulanic acid
    "J01CA01": {"O": 2.0, "P": 6.0},  # ampicillin
    "J01CE01": {"P": 3.6},  # benzylpenicillin
    "J01CR05": {"P": 14.0},  # piperacillin and tazobactam
    "J01DB01": {"O": 2.0},  # cefalexin
    "J01DB04": {"P": 3.0},  # cefazolin
    "J01DC02": {"O": 0.5, "P": 3.0},  # cefuroxime
    "J01DD01": {"P": 4.0},  # cefotaxime
    "J01DD02": {"P": 4.0},  # ceftazidime
    "J01DD04": {"P": 2.0},  # ceftriaxone
    "J01DD12": {"P": 4.0},  # cefoperazone
    "J01DE01": {"P": 4.0},  # cefepime
    "J01DH02": {"P": 3.0},  # meropenem
    "J01DH51": {"P": 2.0},  # imipenem and cilastatin
    "J01FA01": {"O": 1.0, "P": 1.0},  # erythromycin
    "J01FA09": {"O": 0.5},  # clarithromycin
    "J01FA10": {"O": 0.3, "P": 0.5},  # azithromycin
    "J01MA02": {"O": 1.0, "P": 0.8},  # ciprofloxacin
    "J01MA12": {"O": 0.5, "P": 0.5},  # levofloxacin
    "J01MA14": {"O": 0.4, "P": 0.4},  # moxifloxacin
    "J01XA01": {"P": 2.0},  # vancomycin
    "J01XX08": {"O": 1.2, "P": 1.2},  # linezolid
    "J01AA02": {"O": 0.1, "P": 0.1},  # doxycycline
    "J01GB06": {"P": 1.0},  # amikacin
    "J01EE01": {"O": 1.92},  # sulfamethoxazole and trimethoprim (as tablets of 0.48 g)
}

INPATIENT = ("inpatient_use_rate", "use_intensity")  # the indicators a department's discharged also have
#: indicator → its name in an alert's reason
INDICATORS = {"outpatient_rate": "outpatient antimicrobial prescription rate",
              "emergency_rate": "emergency antimicrobial prescription rate",
              "inpatient_use_rate": "inpatient use rate", "use_intensity": "use intensity"}


@dataclass(frozen=True)
class StewardshipLimits:
    """Configuration ``[claim.antimicrobial_stewardship]``."""

    outpatient_rate: float = 0.20  # 门诊患者抗菌药物使用率 ≤ 20 %
    emergency_rate: float = 0.40  # 急诊 ≤ 40 %
    inpatient_use_rate: float = 0.60  # 住院患者抗菌药物使用率 ≤ 60 %
    use_intensity: float = 40.0  # 抗菌药物使用强度 ≤ 40 DDD per 100 patient-days
    min_visits: int = 100  # outpatient or emergency visits in the month below which that rate is not judged
    min_patient_days: int = 100  # patient-days of the discharged in the month below which neither inpatient one is
    atc_prefixes: list[str] = field(default_factory=lambda: ["J01"])  # systemic antibacterials
    #: the region's drug dictionary: drug code → {atc, grams_per_unit, route (O or P)}; empty: not judged
    drugs: dict[str, dict[str, Any]] = field(default_factory=dict)
    ddd_g: dict[str, dict[str, float]] = field(default_factory=lambda: dict(WHO_DDD_G))


class StewardshipDetector(DailyChart):
    name = "claim.antimicrobial_stewardship"
    version = "1"
    stream = "claim"
    Limits = StewardshipLimits  # its configuration section [claim.antimicrobial_stewardship]
    key = "institution"
    key_field = "institution_id"
    fields = ("institution_id", "region", "claim_type", "event_time", "items", "admission_date", "discharge_date",
              "discharge_department", "claim_id", "original_claim_id", "adjustment", "version")
    max_evidence = 5
    raised_after_evidence = True  # judged when the month closes
    versioned = True  # a refund's void takes its claim back out; its settlement after counts again (process)

    @classmethod
    def _conformance_params(cls) -> dict[str, Any]:
        # October from the 12th and the first days of November: October is judged when 1 November closes
        return {"days": 22, "own_scenarios": True}

    def __init__(self, limits: StewardshipLimits | None = None) -> None:
        super().__init__(limits)
        self._prefixes = tuple(self.limits.atc_prefixes)
        # drug code → DDDs per billed unit (0 when the WHO gives none for its route): antimicrobials only
        self._ddd_per_unit: dict[str, float] = {}
        for code, d in self.limits.drugs.items():
            if str(d.get("atc", "")).startswith(self._prefixes):
                ddd = self.limits.ddd_g.get(d["atc"], {}).get(d.get("route", "O"))
                self._ddd_per_unit[code] = float(d.get("grams_per_unit", 0.0)) / ddd if ddd else 0.0

    def key_of(self, event: dict[str, Any]) -> str | None:
        if not self._ddd_per_unit or event["claim_type"] not in ("outpatient", "emergency", "inpatient"):
            return None
        return event["institution_id"]

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        if not versions.counted_once(ctx.state, event):
            return []  # a price correction: who was given an antimicrobial has not changed
        return super().process(ctx, event, source)

    def values(self, event: dict[str, Any]) -> dict[str, float] | None:
        sign = -1.0 if versions.adjustment(event) == "void" else 1.0
        ddd, used = 0.0, False
        for it in event["items"]:
            per_unit = self._ddd_per_unit.get(str(it.get("item_code")))
            if per_unit is not None:
                used = True
                ddd += per_unit * float(it.get("quantity") or 0.0)
        kind = event["claim_type"]
        if kind != "inpatient":
            k = kind[0]  # o, e
            return {f"{k}_n": sign, f"{k}_k": sign * used}
        try:
            days = (date.fromisoformat(str(event["discharge_date"])[:10])
                    - date.fromisoformat(str(event["admission_date"])[:10])).days
        except (KeyError, TypeError, ValueError):
            return None  # a stay without its dates has no patient-days
        out = {"i_n": sign, "i_k": sign * used, "i_pd": sign * max(1, days), "i_ddd": sign * ddd}
        dept = event.get("discharge_department")
        if dept:  # 出院科别: the department's own inpatient figures (the report's departments)
            out.update({f"{name}\t{dept}": value for name, value in list(out.items())})
        return out

    def new_chart(self) -> None:
        return None  # the month's totals are the state (judge)

    def judge(self, ctx: Context, chart: None, day: str, totals: dict[str, float], evidence: list[Source],
              now: float) -> list[Alert]:
        st = ctx.state
        month = day[:7]
        out: list[Alert] = []
        kept = st.get("month")
        if kept and kept[0] < month:
            out = self._judge_month(ctx, kept[0], kept[1], [Source(*s) for s in kept[2]], now)
            kept = None
        if kept is None:
            kept = st["month"] = [month, {}, []]
        for name, value in totals.items():
            kept[1][name] = kept[1].get(name, 0.0) + value
        for s in evidence:
            if len(kept[2]) < self.max_evidence:
                kept[2].append(list(s))
        versions.forget_voids(st, date.fromordinal(date.fromisoformat(day).toordinal() - 7).isoformat())
        return out

    def _departments(self, t: dict[str, float]) -> dict[str, dict[str, dict[str, Any]]]:
        """The inpatient indicators of each department the discharged were discharged from (出院科别), judged
        as the institution's: not under ``min_patient_days``."""
        by: dict[str, dict[str, float]] = {}
        for name, value in t.items():
            if "\t" in name:
                measure, dept = name.split("\t", 1)
                by.setdefault(dept, {})[measure] = value
        return {dept: m for dept, totals in sorted(by.items()) if (m := self._measures(totals))}

    def _measures(self, t: dict[str, float]) -> dict[str, dict[str, Any]]:
        c = self.limits
        m: dict[str, dict[str, Any]] = {}
        for kind, name in (("o", "outpatient_rate"), ("e", "emergency_rate")):
            n, k = round(t.get(f"{kind}_n", 0.0)), round(t.get(f"{kind}_k", 0.0))
            if n > 0:
                m[name] = {"value": round(k / n, 4), "numerator": k, "denominator": n,
                           "target": getattr(c, name), "judged": n >= c.min_visits}
        n, k, pd, ddd = (t.get("i_n", 0.0), t.get("i_k", 0.0), t.get("i_pd", 0.0), t.get("i_ddd", 0.0))
        if n > 0 and pd > 0:
            judged = pd >= c.min_patient_days
            m["inpatient_use_rate"] = {"value": round(k / n, 4), "numerator": round(k), "denominator": round(n),
                                       "target": c.inpatient_use_rate, "judged": judged}
            m["use_intensity"] = {"value": round(100 * ddd / pd, 2), "numerator": round(ddd, 1),
                                  "denominator": round(pd), "target": c.use_intensity, "judged": judged}
        return m

    def _judge_month(self, ctx: Context, month: str, totals: dict[str, float], evidence: list[Source],
                     now: float) -> list[Alert]:
        measures = self._measures(totals)
        departments = self._departments(totals)
        inst, region = ctx.key, ctx.state.get("ctx", {}).get("region", "unknown")
        if measures:
            body = {**measures, "departments": departments} if departments else measures
            ctx.publish(Report(kind="antimicrobial_stewardship", detector=self.name, version=self.version,
                               institution_id=inst, region=region, period=month, event_t=now, body=body))
        out = []
        for name, x in measures.items():
            if not x["judged"] or x["value"] <= x["target"]:
                continue
            others = "; ".join(_describe(n, y) for n, y in measures.items() if n != name)
            target = f"{100 * x['target']:g} %" if name != "use_intensity" else f"{x['target']:g}"
            # the departments over the same target, the largest share of the patient-days first
            over = sorted(((d, m[name]) for d, m in departments.items() if name in m and m[name]["judged"]
                           and m[name]["value"] > m[name]["target"]), key=lambda dm: (-dm[1]["denominator"], dm[0]))
            wards = "; departments over it: " + ", ".join(f"{d} {_value(name, y)}" for d, y in over) if over else ""
            reason = (f"institution {inst} in {month}: {_describe(name, x)}, target ≤ {target}{wards}"
                      f"{'; ' + others if others else ''}")
            out.append(Alert.build(
                detector=self.name, version=self.version, key=f"{name}@{month}", stream=self.stream,
                severity="medium", tier="excess_usage", entity_kind="institution", entity_id=inst,
                institution_id=inst, region=region, event_t=now, score=x["value"] / x["target"], reason=reason,
                numbers={"month": month, "indicator": name, "value": x["value"], "target": x["target"],
                         "numerator": x["numerator"], "denominator": x["denominator"], **measures,
                         **({"departments": departments} if departments and name in INPATIENT else {})},
                evidence=evidence,
            ))
        return out


def _value(name: str, x: dict[str, Any]) -> str:
    return f"{x['value']:.1f}" if name == "use_intensity" else f"{100 * x['value']:.1f} %"


def _describe(name: str, x: dict[str, Any]) -> str:
    if name == "use_intensity":
        return (f"{INDICATORS[name]} {x['value']:.1f} DDD per 100 patient-days ({x['numerator']:g} DDD over "
                f"{x['denominator']} patient-days)")
    unit = "discharged" if name == "inpatient_use_rate" else "visits"
    return f"{INDICATORS[name]} {100 * x['value']:.1f} % ({x['numerator']} of {x['denominator']} {unit})"
