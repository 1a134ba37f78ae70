"""Duplicate charge 重复收费: the same item billed twice for one patient, day and institution.

Lines are matched on (patient pseudonym, institution, item code, service day). A
redelivered claim (same claim id and line) is not a duplicate, and neither is a correction: a
claim's replacement takes the place of its earlier version's lines, a void takes them back
(:mod:`models.rules.claims.versions`); an alert whose claim is corrected so that it no longer
bills a line again is withdrawn under its id (status ``withdrawn``). State lives under the patient
and keeps ``retention_days`` of service days behind the newest one seen for that patient (a
horizon of the patient's own, so it is the same however the stream is split), so memory stays
bounded; a patient idle longer is forgotten.
The entity is the billing institution; 重复收费 is a violation (违规, Art. 38 of
医疗保障基金使用监督管理条例). One alert per claim names every line it bills again (a claim of a
thousand repeated lines is one alert, not a thousand), with the amount charged again in all.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([DuplicateChargeDetector()])
>>> def claim(cid, offset):
...     return {"claim_id": cid, "institution_id": "H1", "patient": "Pabc", "doctor_id": "D1",
...             "event_time": "2026-01-05T10:00:00+08:00", "_t": 1767578400.0,
...             "items": [{"item_code": "CT-HEAD", "quantity": 1, "unit_price": 300.0, "amount": 300.0}]}
>>> d.process(claim("C1", 1), Source("zhijian.claims", 0, 1, "C1"))
[]
>>> d.process(claim("C1", 1), Source("zhijian.claims", 0, 1, "C1"))  # redelivery
[]
>>> [a] = d.process(claim("C2", 2), Source("zhijian.claims", 0, 2, "C2"))
>>> print(a.reason)
institution H1 billed CT-HEAD again for patient Pabc on 2026-01-05 on claim C2 (first on C1): 1 line, 300.00 charged again
>>> fixed = claim("C2", 3) | {"adjustment": "replacement", "version": 2,
...                           "items": [{"item_code": "MRI-HEAD", "quantity": 1, "unit_price": 900.0, "amount": 900.0}]}
>>> [w] = d.process(fixed, Source("zhijian.claims", 0, 3, "C2#2"))   # corrected: it billed an MRI, not the CT again
>>> w.alert_id == a.alert_id, w.status
(True, 'withdrawn')
>>> d.process(claim("C2", 2), Source("zhijian.claims", 0, 2, "C2"))   # the first version, late: stale
[]
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector
from models.rules.claims import versions


@dataclass(frozen=True)
class DuplicateChargeConfig:
    retention_days: int = 3


@dataclass(slots=True)
class _Line:
    claim_id: str
    line: int
    amount: float
    source: Source


class DuplicateChargeDetector(KeyedDetector):
    name = "claim.duplicate_charge"
    version = "2"  # 2: one alert per claim listing its repeated lines (1: one per line); versions change no id
    stream = "claim"
    Limits = DuplicateChargeConfig  # its configuration section [claim.duplicate_charge]
    key, key_field = "patient", "patient"
    versioned = True  # a replacement takes its earlier version's lines' place, a void takes them back

    def __init__(self, config: DuplicateChargeConfig | None = None) -> None:
        super().__init__(config)
        self.config = self.limits
        self.retention_s = (self.config.retention_days + 1) * 86400.0

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        st = ctx.state
        fam = versions.family(event)
        # an undated line is billed on the day its claim was first settled: a correction re-sent days later does
        # not move a discharge's drugs to the day of the re-send (where the next visit's would look billed again)
        settled_day = st.get("settled", {}).get(fam) or event["event_time"][:10]
        days = [it.get("service_date") or settled_day for it in event["items"]]
        newest = max([*days, st.get("newest", "")])
        if not newest:
            return []  # a claim without lines bills nothing
        horizon = (date.fromisoformat(newest) - timedelta(days=self.config.retention_days)).isoformat()
        # (institution, item, service day) → [claim family, line, amount] of its first billing; the record that
        # billed a family's lines is kept once per family ("src"), not once per line
        lines = st.get("lines", {})
        if st.get("pruned") != horizon:  # the retention moved on: drop what left it (once a day, not per claim)
            lines = {k: v for k, v in lines.items() if k.rsplit("|", 1)[1] >= horizon}
            if "src" in st:
                billing = {v[0] for v in lines.values()}
                st["src"] = {f: s for f, s in st["src"].items() if f in billing}
            st["applied"] = versions.forget_before(st.get("applied", {}), horizon)
            st["alerted"] = {f: d for f, d in st.get("alerted", {}).items() if d >= horizon}
            if "settled" in st:
                st["settled"] = {f: d for f, d in st["settled"].items() if d >= horizon}
            st["pruned"] = horizon
        applied = st.setdefault("applied", {})
        what = versions.admit(applied, event, min(days))
        st["newest"], st["lines"] = newest, lines
        if what == "stale":
            return []  # a version not newer than the one applied: re-sent, or overtaken
        if what == "new" and settled_day in days and settled_day >= horizon:
            st.setdefault("settled", {})[fam] = settled_day
        if what != "new":  # a replacement or a void: what the earlier version billed is taken back
            lines = st["lines"] = {k: v for k, v in lines.items() if v[0] != fam}
            st.get("src", {}).pop(fam, None)
        if what == "voids":
            return self._withdraw(st, fam, event, source, "voided")
        src = st.setdefault("src", {})
        repeated: list[tuple[int, dict[str, Any], str, _Line]] = []
        for i, (item, day) in enumerate(zip(event["items"], days)):
            key = f"{event['institution_id']}|{item['item_code']}|{day}"
            kept = lines.get(key)
            if kept is None:
                if day >= horizon:  # older than the retention: not kept
                    lines[key] = [fam, i, item["amount"]]
                    src[fam] = list(source)
                continue
            # (a line kept before 2026-12-07 carries its record itself)
            first = _Line(kept[0], kept[1], kept[2], Source(*(kept[3] if len(kept) > 3 else src[kept[0]])))
            if first.claim_id == fam and first.line == i:
                continue  # the same line redelivered (by a version before versions were kept)
            repeated.append((i, item, day, first))
        if repeated:
            st.setdefault("alerted", {})[fam] = min(days)
            return [self._alert(event, repeated, source)]
        return self._withdraw(st, fam, event, source, "replaced") if what == "replaces" else []

    def _withdraw(self, st: dict[str, Any], fam: str, event: dict[str, Any], source: Source, how: str) -> list[Alert]:
        """The alert an earlier version of this claim raised, withdrawn under its id: the correction removed its
        grounds (none raised: nothing to say)."""
        if st.get("alerted", {}).pop(fam, None) is None:
            return []
        return [Alert.build(
            detector=self.name, version=self.version, key=fam, stream=self.stream, severity="high", tier="violation",
            entity_kind="institution", entity_id=event["institution_id"], institution_id=event["institution_id"],
            region=event.get("region", "unknown"), event_t=event["_t"], score=0.0, status="withdrawn",
            reason=(f"withdrawn: claim {fam} was {how} by {event['claim_id']} (version {versions.version(event)}); "
                    "it no longer bills a line again"),
            numbers={"duplicate_claim_id": fam, "corrected_by": event["claim_id"], "correction": how,
                     "version": versions.version(event), "duplicate_amount": 0.0, "lines": 0},
            evidence=[source],
        )]

    #: Lines listed in one alert's numbers (the count and the amount cover them all).
    MAX_LINES_LISTED = 50

    def _alert(self, event: dict[str, Any], repeated: list[tuple[int, dict[str, Any], str, _Line]],
               source: Source) -> Alert:
        _, item, day, first = repeated[0]
        again = sum(it["amount"] for _, it, _, _ in repeated)
        more = f" and {len(repeated) - 1} more" if len(repeated) > 1 else ""
        reason = (f"institution {event['institution_id']} billed {item['item_code']}{more} again for patient "
                  f"{event['patient']} on {day} on claim {event['claim_id']} (first on {first.claim_id}): "
                  f"{len(repeated)} line{'s' if len(repeated) > 1 else ''}, {again:.2f} charged again")
        firsts = {f.claim_id: f.source for _, _, _, f in reversed(repeated)}  # each first claim's record, once
        return Alert.build(
            detector=self.name, version=self.version, key=versions.family(event),
            stream=self.stream, severity="high", tier="violation",
            entity_kind="institution", entity_id=event["institution_id"],
            institution_id=event["institution_id"], region=event.get("region", "unknown"),
            event_t=event["_t"], score=2.0, reason=reason,
            numbers={"item_code": item["item_code"], "service_date": day, "patient": event["patient"],
                     "first_claim_id": first.claim_id, "first_amount": first.amount,
                     "duplicate_claim_id": event["claim_id"], "duplicate_amount": round(again, 2),
                     "lines": len(repeated), "doctor_id": event["doctor_id"],
                     "repeated": [{"line": i, "item_code": it["item_code"], "service_date": d,
                                   "amount": it["amount"], "first_claim_id": f.claim_id, "first_line": f.line}
                                  for i, it, d, f in repeated[:self.MAX_LINES_LISTED]]},
            evidence=[*list(reversed(firsts.values()))[:20], source],
        )
