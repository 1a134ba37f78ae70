"""The institution ledger 机构医保台账: what each institution billed, day by day, for the risk score.

A supervisor compares institutions by rates, not by size: claims and money per beneficiary, the
amount of a claim, the share of claims in the costliest tenth, readmissions within 30 days and the
length of stays, physicians who also bill elsewhere, and how often the rules caught it. The
ledger keeps, per institution and day of event time, the sums those rates need — claims, money,
stays, days in hospital, readmissions (planned cycles left out), the claims above the region's
90th percentile — the last day each beneficiary was seen, and the claims each physician billed at
each institution (a physician billing mostly elsewhere is *borrowed*, 挂证); alerts are counted by
detector. Everything
older than ``window_days`` is forgotten (:meth:`InstitutionLedger.expire`), so memory is bounded by
what the window holds. Pure: events in, numbers out (:mod:`streams.workbench.risk.score` turns them into a
score).

Claim amounts are kept as counts in logarithmic bins (``BINS_PER_DECADE`` a decade), per claim
type and day, so the region's 90th percentile of each claim type is known at scoring time without
keeping every claim.

>>> ledger = InstitutionLedger()
>>> def claim(n, inst, patient, amount, day, **kw):
...     e = {"claim_id": f"CL{n}", "institution_id": inst, "patient": patient, "doctor_id": f"{inst}-D1",
...          "claim_type": "outpatient", "total_amount": amount, "event_time": f"{day}T10:00:00+08:00", **kw}
...     ledger.learn_claim(e)
>>> claim(1, "K01", "Pa", 80.0, "2026-10-01"); claim(2, "K01", "Pa", 90.0, "2026-10-03"); claim(3, "K01", "Pb", 70.0, "2026-10-03")
>>> claim(4, "H2", "Pc", 9000.0, "2026-10-02", claim_type="inpatient", admission_date="2026-09-25", discharge_date="2026-10-02")
>>> claim(5, "H2", "Pc", 8000.0, "2026-10-20", claim_type="inpatient", admission_date="2026-10-15", discharge_date="2026-10-20")
>>> t = ledger.totals("K01", "2026-10-31"); (t["claims"], t["money"], t["beneficiaries"])
(3, 240.0, 2)
>>> t = ledger.totals("H2", "2026-10-31"); (t["stays"], t["stay_days"], t["readmissions"])
(2, 12, 1)
"""
from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from models.rules import registry
from models.rules.claims import versions
from models.rules.claims.split_admission import ReadmissionRules, planned_stay

#: Claim amounts are counted in bins of 1/BINS_PER_DECADE of a power of ten (≈ 12 % wide).
BINS_PER_DECADE = 20
#: Days a readmission may follow a discharge to count (the 30-day readmission rate of hospital quality).
READMISSION_DAYS = 30
#: What a planned cycle is (chemotherapy, radiotherapy, dialysis): not counted as a stay that may be a readmission.
PLANNED = ReadmissionRules()
#: The detectors whose alerts are the "duplicate and unbundling" rate.
DUPLICATE_DETECTORS = ("claim.duplicate_charge", "claim.unbundling")


#: The claims rules whose alerts come after the claims that raise them are committed (re-keyed, or judged on a
#: timer): the scorer reads claims behind the worker's commits and the alert topic to its end, so an alert raised as
#: its claim is judged is always there when the claim is, these may or may not be — counting them made a score
#: depend on timing (two identical runs gave different scores for 47 real providers). The rule rates leave them out.
LATE_DETECTORS = registry.raised_late("claim")

_DAY_FIELDS = ("claims", "money", "stays", "stay_days", "readmissions", "inpatient", "pharmacy", "money_sq",
               "stay_days_sq")


def amount_bin(amount: float) -> int:
    """The logarithmic bin of an amount (amounts below 1 share bin 0)."""
    return max(0, int(math.floor(math.log10(max(amount, 1.0)) * BINS_PER_DECADE)))


def day_of(event: dict[str, Any]) -> str:
    """The calendar day of the event in its own offset (a claim settled at 23:00 local is that day's)."""
    return event["event_time"][:10]


class InstitutionLedger:
    """Per-institution daily sums over a sliding window of event time (see the module's docstring)."""

    def __init__(self, window_days: int = 365) -> None:
        self.window_days = window_days
        self.days: dict[str, dict[str, list[float]]] = defaultdict(dict)  # inst → day → sums (_DAY_FIELDS)
        self.amounts: dict[str, dict[str, dict[tuple[str, int], int]]] = defaultdict(dict)  # inst → day → (type, bin) → n
        self.patients: dict[str, dict[str, str]] = defaultdict(dict)  # inst → patient → last day
        self.physicians: dict[str, dict[str, str]] = defaultdict(dict)  # inst → physician → last day
        self.billed: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)  # physician → inst → day → claims
        self.discharged: dict[str, tuple[str, str]] = {}  # patient → (institution, day) of the last discharge
        self.alerts: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)  # inst → day → detector → n
        #: claim family → [version learned, day], within the window (:func:`versions.admit`'s memory: a re-sent or
        #: overtaken version counts nothing)
        self.seen_claims: dict[str, list[Any]] = {}
        #: claim family → what its learned version added — institution, day, amount, bin slot, doctors, stay days,
        #: readmission, claim type — that a replacement takes back, and a void for good
        self.added: dict[str, list[Any]] = {}
        self.newest_day: str = ""

    # --- learning -------------------------------------------------------------------------
    def learn_claim(self, event: dict[str, Any]) -> None:
        """One validated claim (patient already pseudonymized, as ``patient``): by its latest version — a replacement
        takes back what the version it replaces added, a void takes it back for good, a version not newer than the
        one learned changes nothing (:mod:`models.rules.claims.versions`). Beneficiaries and physicians seen stay
        seen."""
        inst, day = event["institution_id"], day_of(event)
        fam = versions.family(event)
        what = versions.admit(self.seen_claims, event, day)
        if what == "stale":
            return  # re-sent, or overtaken by a newer version
        if what != "new" and fam in self.added:
            self._take_back(self.added.pop(fam))
        if what == "voids":
            return
        self.newest_day = max(self.newest_day, day)
        added: list[Any] = [inst, day, 0.0, None, [], 0, 0, event.get("claim_type", "outpatient")]
        self.added[fam] = added
        sums = self.days[inst].get(day)
        if sums is None:
            sums = self.days[inst][day] = [0.0] * len(_DAY_FIELDS)
        amount = float(event["total_amount"])
        sums[0] += 1
        sums[1] += amount
        sums[7] += amount * amount
        kind = event.get("claim_type", "outpatient")
        if kind == "pharmacy":
            sums[6] += 1
        per_day = self.amounts[inst].setdefault(day, {})
        slot = (kind, amount_bin(amount))
        per_day[slot] = per_day.get(slot, 0) + 1
        added[2], added[3] = amount, slot
        patient = event.get("patient")
        if patient is not None:
            self.patients[inst][patient] = max(day, self.patients[inst].get(patient, ""))
        doctors = {event.get("doctor_id")}
        for role, who in (event.get("physicians") or {}).items():
            doctors.update(who if isinstance(who, list) else [who])
        for doc in sorted(doctors - {None, "unknown"}):
            self.physicians[inst][doc] = max(day, self.physicians[inst].get(doc, ""))
            per_day = self.billed[doc].setdefault(inst, {})
            per_day[day] = per_day.get(day, 0) + 1
            added[4].append(doc)
        if kind == "inpatient":
            sums[5] += 1
            admitted, discharged = event.get("admission_date"), event.get("discharge_date")
            if admitted and discharged and not planned_stay(event, PLANNED):  # planned cycles are not readmissions
                sums[2] += 1
                los = max(1, (date.fromisoformat(discharged[:10]) - date.fromisoformat(admitted[:10])).days)
                sums[3] += los
                sums[8] += los * los
                added[5] = los
                before = self.discharged.get(patient) if patient is not None else None
                if before is not None and before[0] == inst:
                    gap = (date.fromisoformat(admitted[:10]) - date.fromisoformat(before[1])).days
                    if 0 <= gap <= READMISSION_DAYS:
                        sums[4] += 1
                        added[6] = 1
                if patient is not None:
                    self.discharged[patient] = (inst, discharged[:10])

    def learn_alert(self, alert: dict[str, Any], count: int = 1) -> None:
        """One alert of the claims stream (by its first record: callers pass each alert id once; ``count`` −1
        takes back one a correction withdrew)."""
        inst = alert.get("institution_id")
        if (alert.get("stream") != "claim" or not inst or alert["detector"] == "alerts.flood"
                or alert["detector"] in LATE_DETECTORS):
            return
        day = alert["event_time"][:10]
        per_day = self.alerts[inst].setdefault(day, {})
        per_day[alert["detector"]] = max(0, per_day.get(alert["detector"], 0) + count)

    def _take_back(self, kept: list[Any]) -> None:
        """Subtract what one version of a claim added (its day may have left the window: nothing to take)."""
        inst, day, amount, slot, doctors, los, readmitted, kind = kept
        sums = self.days.get(inst, {}).get(day)
        if sums is None:
            return
        sums[0] -= 1
        sums[1] -= amount
        sums[7] -= amount * amount
        if kind == "pharmacy":
            sums[6] -= 1
        if kind == "inpatient":
            sums[5] -= 1
        if los:
            sums[2] -= 1
            sums[3] -= los
            sums[8] -= los * los
            sums[4] -= readmitted
        per_day = self.amounts.get(inst, {}).get(day, {})
        if slot is not None and per_day.get(tuple(slot)):
            per_day[tuple(slot)] -= 1
        for doc in doctors:
            billed = self.billed.get(doc, {}).get(inst, {})
            if billed.get(day):
                billed[day] -= 1

    # --- reading --------------------------------------------------------------------------
    def _start(self, as_of: str) -> str:
        return (date.fromisoformat(as_of) - timedelta(days=self.window_days - 1)).isoformat()

    def institutions(self) -> list[str]:
        return sorted(self.days)

    def totals(self, inst: str, as_of: str) -> dict[str, Any]:
        """The window's sums for one institution, up to and including ``as_of``."""
        start = self._start(as_of)
        sums = [0.0] * len(_DAY_FIELDS)
        for day, values in self.days.get(inst, {}).items():
            if start <= day <= as_of:
                for i, v in enumerate(values):
                    sums[i] += v
        out: dict[str, Any] = dict(zip(_DAY_FIELDS, sums))
        out["claims"] = int(out["claims"])
        for k in ("stays", "stay_days", "readmissions", "inpatient", "pharmacy"):
            out[k] = int(out[k])
        out["beneficiaries"] = sum(1 for d in self.patients.get(inst, {}).values() if start <= d <= as_of)
        mine = [p for p, d in self.physicians.get(inst, {}).items() if start <= d <= as_of]
        out["physicians"] = len(mine)
        borrowed = 0  # claims billed here under a physician who bills most of their claims at another institution
        for doc in mine:
            sites = {i: sum(n for d, n in days.items() if start <= d <= as_of) for i, days in self.billed[doc].items()}
            main = max(sorted(sites), key=lambda i: sites[i])
            if main != inst:
                borrowed += sites.get(inst, 0)
        out["borrowed_claims"] = borrowed
        hits: dict[str, int] = defaultdict(int)
        for day, per in self.alerts.get(inst, {}).items():
            if start <= day <= as_of:
                for detector, n in per.items():
                    hits[detector] += n
        out["alerts"] = dict(hits)
        return out

    def amount_counts(self, inst: str, as_of: str) -> dict[tuple[str, int], int]:
        start = self._start(as_of)
        out: dict[tuple[str, int], int] = defaultdict(int)
        for day, per in self.amounts.get(inst, {}).items():
            if start <= day <= as_of:
                for slot, n in per.items():
                    out[slot] += n
        return out

    def expire(self, as_of: str) -> None:
        """Forget what lies before the window ending at ``as_of`` (call once a day)."""
        start = self._start(as_of)
        for table in (self.days, self.amounts, self.alerts, *self.billed.values()):
            for inst in list(table):
                for day in [d for d in table[inst] if d < start]:
                    del table[inst][day]
                if not table[inst]:
                    del table[inst]
        for doc in [d for d, sites in self.billed.items() if not sites]:
            del self.billed[doc]
        for table in (self.patients, self.physicians):
            for owner in list(table):
                for k in [k for k, d in table[owner].items() if d < start]:
                    del table[owner][k]
                if not table[owner]:
                    del table[owner]
        horizon = (date.fromisoformat(as_of) - timedelta(days=READMISSION_DAYS + 1)).isoformat()
        for patient in [p for p, (_, d) in self.discharged.items() if d < horizon]:
            del self.discharged[patient]
        self.seen_claims = versions.forget_before(self.seen_claims, start)
        self.added = {f: a for f, a in self.added.items() if f in self.seen_claims}
