"""One card in two places 冒名就医 / 异地同时结算: an insured person settles at two institutions closer in time than
the travel between them, or is an inpatient at two hospitals on the same nights.

A card lent or copied (冒名就医, 借卡) shows where its holder cannot be: an outpatient, emergency or pharmacy
settlement at one institution and another at a second institution minutes later, across the city; or two
inpatient stays whose nights overlap (挂床 at one of them, or an impostor admitted under the card). The travel
between two institutions is configuration — ``travel_minutes`` by institution pair, by place pair (``places``
maps an institution to its district or campus) or within one place — and ``window_minutes`` (30) where the
table says nothing. A hospital and the pharmacy at its gate are a few minutes apart: list them, and a patient
who pays at both is not judged. A transfer (discharged and admitted elsewhere the same day) shares no night and
is not judged either. An outpatient settlement during a stay elsewhere is :mod:`.phantom_bed`'s.

Settlements are judged per patient and day: one alert per day however many settlements conflict; overlapping
stays one alert per pair. The entity is the patient (the card); the alert names both institutions, the minutes
between the settlements against the travel, and the money. A claim is judged by its latest version: a void or a
replacement that takes a conflict away withdraws the alert under its id.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([TwoPlacesDetector(TwoPlacesConfig(travel_minutes={"H301|P01": 5}))])
>>> def claim(cid, inst, hhmm, kind="outpatient", **extra):
...     e = {"claim_id": cid, "institution_id": inst, "patient": "Pq", "claim_type": kind,
...          "event_time": f"2026-10-14T{hhmm}:00+08:00", "total_amount": 180.0, **extra}
...     e["_t"] = 1791907200.0 + int(hhmm[:2]) * 3600 + int(hhmm[3:]) * 60
...     return d.process(e, Source("zhijian.claims", 0, int(hhmm.replace(":", "")), cid))
>>> claim("C1", "H301", "09:10"), claim("C2", "P01", "09:22", "pharmacy")   # the pharmacy at the hospital's gate
([], [])
>>> [a] = claim("C3", "K04", "09:45")                  # 23 minutes later at a clinic across the city
>>> print(a.reason)
patient Pq's card settled at 2 institutions on 2026-10-14 closer in time than the travel between them: P01 09:22 (C2) and K04 09:45 (C3), 23 min apart, travel 30 min; 360.00 settled
>>> a.entity_kind, a.entity_id, a.numbers["conflicts"][0]["minutes_apart"]
('patient', 'Pq', 23.0)
>>> [w] = claim("R3", "K04", "11:00", original_claim_id="C3", adjustment="void", version=2)   # refunded
>>> w.alert_id == a.alert_id, w.status
(True, 'withdrawn')
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector
from models.rules.claims import versions


@dataclass(frozen=True)
class TwoPlacesConfig:
    """Configuration ``[claim.two_places]``."""

    window_minutes: float = 30.0  # the travel between two institutions the table does not name
    #: "A|B" (institutions or places, either order) or "P" (within one place) → minutes of travel between them
    travel_minutes: dict[str, float] = field(default_factory=dict)
    places: dict[str, str] = field(default_factory=dict)  # institution → its place (district, campus)
    claim_types: list[str] = field(default_factory=lambda: ["outpatient", "emergency", "pharmacy"])
    min_overlap_nights: int = 1  # stays at two hospitals sharing at least this many nights
    lookback_days: int = 120  # stays kept behind the newest discharge seen for the patient
    retention_hours: float = 48.0  # settlements kept behind the newest seen for the patient (late ones within it)


class TwoPlacesDetector(KeyedDetector):
    name = "claim.two_places"
    version = "1"
    stream = "claim"
    Limits = TwoPlacesConfig  # its configuration section [claim.two_places]
    key, key_field = "patient", "patient"
    versioned = True  # a void or a replacement takes its settlement or stay back

    def __init__(self, config: TwoPlacesConfig | None = None) -> None:
        super().__init__(config)
        self.config = self.limits
        self.retention_s = (self.config.lookback_days + 7) * 86400.0
        self.longest_s = max([self.config.window_minutes, *self.config.travel_minutes.values()]) * 60.0

    def travel_s(self, a: str, b: str) -> float:
        """Seconds of travel between institutions ``a`` and ``b`` (the table, else ``window_minutes``)."""
        table, places = self.config.travel_minutes, self.config.places
        pa, pb = places.get(a), places.get(b)
        for k in (f"{a}|{b}", f"{b}|{a}", f"{pa}|{pb}", f"{pb}|{pa}", pa if pa == pb else None):
            if k in table:
                return float(table[k]) * 60.0
        return self.config.window_minutes * 60.0

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        kind = event["claim_type"]
        stay = kind == "inpatient"
        if not stay and kind not in self.config.claim_types:
            return []
        if stay and not (event.get("admission_date") and event.get("discharge_date")):
            return []
        st = ctx.state
        day = event["event_time"][:10]
        fam = versions.family(event)
        what = versions.admit(st.setdefault("applied", {}), event, day)
        if what == "stale":
            return []
        # settlements [family, institution, t, local "YYYY-MM-DDTHH:MM", amount, source]; stays [family,
        # institution, admission, discharge, amount, source]
        visits: list[list[Any]] = st.setdefault("visits", [])
        stays: list[list[Any]] = st.setdefault("stays", [])
        # a replacement is settled in the back office hours later: the patient was there when the original was —
        # also after a refund (退费: the settlement voided, then settled again), so a voided visit is kept aside
        voided: dict[str, list[Any]] = st.get("voided", {})
        earlier = [v for v in visits if v[0] == fam] or ([voided[fam]] if fam in voided else [])
        if what == "voids" and earlier and not stay:
            st.setdefault("voided", {})[fam] = earlier[0]
        elif what == "replaces" and fam in voided:
            del voided[fam]
        if what != "new":
            visits[:] = [v for v in visits if v[0] != fam]
            stays[:] = [s for s in stays if s[0] != fam]
        if what != "voids":
            amount = float(event.get("total_amount") or 0.0)
            if stay:
                stays.append([fam, event["institution_id"], event["admission_date"], event["discharge_date"], amount,
                              list(source)])
            elif what == "new" and versions.adjustment(event) == "original":
                visits.append([fam, event["institution_id"], event["_t"], event["event_time"][:16], amount,
                               list(source)])
            elif earlier:
                visits.append([fam, event["institution_id"], earlier[0][2], earlier[0][3], amount, list(source)])
        self._prune(st, visits, stays)
        # alert key → [the institution it named, its day, the claim families it rests on]
        alerted: dict[str, list[Any]] = st.setdefault("alerted", {})
        out = []
        # the days whose settlements this version touched, and the stay pairs it may have made or unmade
        days = sorted({v[3][:10] for v in visits if v[0] == fam} | {a[1] for k, a in alerted.items()
                                                                   if "|visits|" in k and fam in a[2]})
        for d in days:
            out += self._judge_day(ctx.key, d, visits, alerted, event, source)
        out += self._judge_stays(ctx.key, fam, stays, alerted, event, source)
        return out

    def _prune(self, st: dict[str, Any], visits: list[list[Any]], stays: list[list[Any]]) -> None:
        newest_t = max([v[2] for v in visits] + [st.get("newest_t", 0.0)])
        st["newest_t"] = newest_t
        visits[:] = [v for v in visits if v[2] >= newest_t - self.config.retention_hours * 3600]
        if st.get("voided"):
            st["voided"] = {f: v for f, v in st["voided"].items()
                            if v[2] >= newest_t - self.config.retention_hours * 3600}
        newest = max([s[3] for s in stays] + [st.get("newest_stay", "")])
        if newest:
            st["newest_stay"] = newest
            horizon = (date.fromisoformat(newest) - timedelta(days=self.config.lookback_days)).isoformat()
            stays[:] = [s for s in stays if s[3] >= horizon]
        # versions and alerts are remembered as long as what they judged, and a few days more
        kept = [v[3][:10] for v in visits] + [s[3] for s in stays]
        if kept:
            forget = (date.fromisoformat(min(kept)) - timedelta(days=3)).isoformat()
            st["applied"] = versions.forget_before(st.get("applied", {}), forget)
            st["alerted"] = {k: v for k, v in st.get("alerted", {}).items() if v[1] >= forget}

    def conflicts(self, visits: list[list[Any]]) -> list[tuple[list[Any], list[Any], float]]:
        """The pairs of settlements at two institutions closer in time than the travel between them."""
        ordered = sorted(visits, key=lambda v: (v[2], v[0]))
        found = []
        for i, a in enumerate(ordered):
            for b in ordered[i + 1:]:
                gap = b[2] - a[2]
                if gap >= self.longest_s:
                    break
                if a[1] != b[1] and gap < self.travel_s(a[1], b[1]):
                    found.append((a, b, gap))
        return found

    def _judge_day(self, patient: str, d: str, visits: list[list[Any]], alerted: dict[str, list[Any]],
                   event: dict[str, Any], source: Source) -> list[Alert]:
        k = f"{patient}|visits|{d}"
        found = self.conflicts([v for v in visits if v[3][:10] == d])
        if found and k not in alerted:
            fams = sorted({x[0] for a, b, _ in found for x in (a, b)})
            alerted[k] = [found[0][1][1], d, fams]
            return [self._visits_alert(patient, k, d, found, event)]
        if found:  # still alerted; the grounds it names are kept as they were
            alerted[k][2] = sorted(set(alerted[k][2]) | {x[0] for a, b, _ in found for x in (a, b)})
            return []
        if k in alerted:
            entity, _, _ = alerted.pop(k)
            return [self._withdrawn(patient, k, entity, f"the settlements of {d} are no longer closer than the "
                                    "travel between them", event, source)]
        return []

    def _judge_stays(self, patient: str, fam: str, stays: list[list[Any]], alerted: dict[str, list[Any]],
                     event: dict[str, Any], source: Source) -> list[Alert]:
        out = []
        mine = [s for s in stays if s[0] == fam]
        for s in mine:
            for other in stays:
                if other[0] == fam or other[1] == s[1]:
                    continue
                nights = self._shared_nights(s, other)
                if nights < self.config.min_overlap_nights:
                    continue
                a, b = sorted((s, other), key=lambda x: (x[2], x[0]))
                k = f"{patient}|stays|{a[0]}|{b[0]}"
                if k not in alerted:
                    alerted[k] = [s[1], max(a[3], b[3]), [a[0], b[0]]]
                    out.append(self._stays_alert(patient, k, a, b, nights, event))
        for k in [k for k, v in alerted.items() if "|stays|" in k and fam in v[2]]:
            x, y = ([s for s in stays if s[0] == f] for f in alerted[k][2])
            if not (x and y and self._shared_nights(x[0], y[0]) >= self.config.min_overlap_nights):
                entity = alerted.pop(k)[0]
                out.append(self._withdrawn(patient, k, entity, "the two stays no longer share a night", event, source))
        return out

    @staticmethod
    def _shared_nights(a: list[Any], b: list[Any]) -> int:
        start, end = max(a[2], b[2]), min(a[3], b[3])
        return max(0, (date.fromisoformat(end) - date.fromisoformat(start)).days)

    def _visits_alert(self, patient: str, k: str, d: str, found: list[tuple[list[Any], list[Any], float]],
                      event: dict[str, Any]) -> Alert:
        involved = sorted({id(x): x for a, b, _ in found for x in (a, b)}.values(), key=lambda v: (v[2], v[0]))
        institutions = sorted({v[1] for v in involved})
        a, b, gap = min(found, key=lambda f: f[2])
        travel = self.travel_s(a[1], b[1])
        money = round(sum(v[4] for v in involved), 2)
        reason = (f"patient {patient}'s card settled at {len(institutions)} institutions on {d} closer in time than "
                  f"the travel between them: {a[1]} {a[3][11:]} ({a[0]}) and {b[1]} {b[3][11:]} ({b[0]}), "
                  f"{gap / 60:.0f} min apart, travel {travel / 60:.0f} min; {money:.2f} settled")
        return Alert.build(
            detector=self.name, version=self.version, key=k, stream=self.stream, severity="high", tier="fraud",
            entity_kind="patient", entity_id=patient, institution_id=b[1], region=event.get("region", "unknown"),
            event_t=event["_t"], score=1.0 + (travel - gap) / travel, reason=reason,
            numbers={"patient": patient, "day": d, "institutions": institutions, "amount": money,
                     "conflicts": [{"first": {"claim_id": x[0], "institution_id": x[1], "time": x[3]},
                                    "second": {"claim_id": y[0], "institution_id": y[1], "time": y[3]},
                                    "minutes_apart": round(g / 60, 1),
                                    "travel_minutes": round(self.travel_s(x[1], y[1]) / 60, 1)}
                                   for x, y, g in found[:10]]},
            evidence=[Source(*v[5]) for v in involved][-20:],
        )

    def _stays_alert(self, patient: str, k: str, a: list[Any], b: list[Any], nights: int,
                     event: dict[str, Any]) -> Alert:
        money = round(a[4] + b[4], 2)
        reason = (f"patient {patient} was an inpatient at two hospitals on the same {nights} night"
                  f"{'s' if nights > 1 else ''}: {a[1]} {a[2]} → {a[3]} ({a[0]}) and {b[1]} {b[2]} → {b[3]} "
                  f"({b[0]}); {money:.2f} billed for the two stays")
        return Alert.build(
            detector=self.name, version=self.version, key=k, stream=self.stream, severity="high", tier="fraud",
            entity_kind="patient", entity_id=patient, institution_id=event["institution_id"],
            region=event.get("region", "unknown"), event_t=event["_t"], score=1.0 + nights / 7, reason=reason,
            numbers={"patient": patient, "shared_nights": nights, "amount": money,
                     "stays": [{"claim_id": s[0], "institution_id": s[1], "admission_date": s[2],
                                "discharge_date": s[3], "amount": s[4]} for s in (a, b)]},
            evidence=[Source(*a[5]), Source(*b[5])],
        )

    def _withdrawn(self, patient: str, k: str, entity: str, why: str, event: dict[str, Any],
                   source: Source) -> Alert:
        return Alert.build(
            detector=self.name, version=self.version, key=k, stream=self.stream, severity="high", tier="fraud",
            entity_kind="patient", entity_id=patient, institution_id=entity, region=event.get("region", "unknown"),
            event_t=event["_t"], score=0.0, status="withdrawn",
            reason=f"withdrawn: claim {versions.family(event)} was corrected; {why}",
            numbers={"patient": patient, "corrected_by": event["claim_id"]}, evidence=[source],
        )
