"""Doctor shopping 重复开药 / 多处开药: one patient collecting the same controlled drug from many prescribers.

The PQA overuse-of-opioids measure counts patients who obtain a drug from several
prescribers and several dispensing sites with overlapping supply. For each patient and
ATC code of a watched class (narcotics and psychotropics by default), the detector keeps the
prescriptions of the last ``lookback_days`` and alerts when they come from at least
``min_prescribers`` prescribers at ``min_institutions`` institutions and at least two supply
windows overlap. Once per patient and drug until the lookback has forgotten the episode.
The entity is the patient (pseudonymized).

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([DoctorShoppingDetector()])
>>> def rx(i, site, day):
...     e = {"prescription_id": f"RX{i}", "institution_id": site, "prescriber_id": f"{site}-D1", "patient": "Pxyz",
...          "visit_type": "outpatient", "event_time": f"2026-10-{day:02d}T10:00:00+08:00", "_t": 1791000000.0 + i,
...          "items": [{"drug_code": "MCR30", "atc_code": "N02AA01", "name": "morphine CR 30 mg", "days_supply": 7,
...                     "controlled_class": "narcotic"}]}
...     return d.process(e, Source("zhijian.prescriptions", 1, i, f"RX{i}"))
>>> rx(1, "H1", 1), rx(2, "H2", 3), rx(3, "C1", 5)
([], [], [])
>>> [a] = rx(4, "C2", 8)
>>> a.entity_kind, a.numbers["prescribers"], a.numbers["institutions"], a.numbers["overlap_days"]
('patient', 4, 4, 14)
>>> print(a.reason)
patient Pxyz got N02AA01 (MCR30) from 4 prescribers at 4 institutions in 8 days, 14 days of overlapping supply: RX1, RX2, RX3, RX4
>>> rx(5, "H3", 9)                            # the same episode: reported once
[]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class ShoppingLimits:
    """Configuration ``[prescription.duplicate_overlap]``."""

    min_prescribers: int = 4
    min_institutions: int = 4
    lookback_days: int = 180
    classes: list[str] = field(default_factory=lambda: ["narcotic", "psychotropic_1", "psychotropic_2"])


@dataclass(slots=True)
class _Fill:
    prescription_id: str
    prescriber: str
    institution: str
    start: date
    end: date  # exclusive
    drug_code: str
    source: Source


def _fill(kept: list[Any]) -> _Fill:
    rx, prescriber, institution, start, end, drug_code, source = kept
    return _Fill(rx, prescriber, institution, date.fromisoformat(start), date.fromisoformat(end), drug_code,
                 Source(*source))


def _keep(f: _Fill) -> list[Any]:
    return [f.prescription_id, f.prescriber, f.institution, f.start.isoformat(), f.end.isoformat(), f.drug_code,
            list(f.source)]


class DoctorShoppingDetector(KeyedDetector):
    name = "prescription.duplicate_overlap"
    version = "1"
    stream = "prescription"
    Limits = ShoppingLimits  # its configuration section [prescription.duplicate_overlap]
    key, key_field = "patient", "patient"

    @classmethod
    def _conformance_params(cls) -> dict[str, Any]:
        # overlapping fills of the same drug from several prescribers accumulate over weeks: three weeks of only its
        # own scenarios
        return {"days": 21, "own_scenarios": True}

    def __init__(self, limits: ShoppingLimits | None = None) -> None:
        super().__init__(limits)
        self._classes = set(self.limits.classes)
        # a patient's history is the lookback; a few days more so an episode's end is still known
        self.retention_s = (self.limits.lookback_days + 7) * 86400.0

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        alerts = []
        day = date.fromisoformat(event["event_time"][:10])
        horizon = day - timedelta(days=self.limits.lookback_days)
        for it in event["items"]:
            if it.get("controlled_class", "none") not in self._classes:
                continue
            drug = it.get("atc_code") or it["drug_code"]
            kept = ctx.state.setdefault(drug, {"fills": []})
            fills = [f for f in map(_fill, kept["fills"]) if f.start >= horizon]
            if any(f.prescription_id == event["prescription_id"] for f in fills):
                continue  # redelivered
            fills.append(_Fill(event["prescription_id"], event["prescriber_id"], event["institution_id"], day,
                               day + timedelta(days=max(1, int(it["days_supply"]))), it["drug_code"], source))
            reported = kept.get("reported")
            alert = self._check(event, (ctx.key, drug), fills, horizon,
                                None if reported is None else date.fromisoformat(reported))
            if alert is not None:
                alerts.append(alert)
                kept["reported"] = max(f.start for f in fills).isoformat()
            kept["fills"] = [_keep(f) for f in fills]
        return alerts

    def _check(self, event: dict[str, Any], key: tuple[str, str], fills: list[_Fill], horizon: date,
               reported: date | None) -> Alert | None:
        if reported is not None and reported >= horizon:
            return None
        prescribers = {f.prescriber for f in fills}
        institutions = {f.institution for f in fills}
        if len(prescribers) < self.limits.min_prescribers or len(institutions) < self.limits.min_institutions:
            return None
        ordered = sorted(fills, key=lambda f: f.start)
        overlap = 0
        covered_until = ordered[0].end
        for f in ordered[1:]:
            overlap += max(0, (min(covered_until, f.end) - f.start).days)
            covered_until = max(covered_until, f.end)
        if overlap <= 0:
            return None
        patient, atc = key
        days = (ordered[-1].start - ordered[0].start).days + 1
        reason = (f"patient {patient} got {atc} ({ordered[-1].drug_code}) from {len(prescribers)} prescribers at "
                  f"{len(institutions)} institutions in {days} days, {overlap} days of overlapping supply: "
                  + ", ".join(f.prescription_id for f in ordered))
        return Alert.build(
            detector=self.name, version=self.version, key=f"{patient}|{atc}|{ordered[0].prescription_id}",
            stream=self.stream, severity="high", tier="violation", entity_kind="patient", entity_id=patient,
            institution_id=event["institution_id"], region=event.get("region", "unknown"), event_t=event["_t"],
            score=len(prescribers) / self.limits.min_prescribers, reason=reason,
            numbers={"atc_code": atc, "prescribers": len(prescribers), "institutions": len(institutions),
                     "overlap_days": overlap, "prescriptions": [f.prescription_id for f in ordered],
                     "first": ordered[0].start.isoformat(), "last": ordered[-1].start.isoformat()},
            evidence=[f.source for f in ordered][:20],
        )
