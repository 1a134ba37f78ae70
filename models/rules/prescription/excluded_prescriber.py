"""Prescriptions by excluded prescribers 黑名单医师处方: a prescription written by a prescriber, or at an
institution, on the excluded list (:mod:`models.rules.watchlist`) — a doctor whose prescribing right is suspended
(暂停处方权) or an institution outside the fund may not prescribe at its expense. One alert per
prescription; the entity is the excluded prescriber, else the institution.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> rt = Runtime([ExcludedPrescriberDetector()], reference={"watchlist": {"prescriber:D7": {"list": "excluded"}}})
>>> rx = {"prescription_id": "RX1", "prescriber_id": "D7", "institution_id": "H1", "department": "IM",
...       "visit_type": "outpatient", "items": [], "region": "310101",
...       "event_time": "2026-11-02T10:00:00+08:00", "_t": 1793584800.0}
>>> [a] = rt.process(rx, Source("zhijian.prescriptions", 0, 1, "RX1"))
>>> a.entity_kind, a.entity_id, a.reason
('prescriber', 'D7', 'prescription RX1 at H1 written by excluded provider(s): prescriber D7')
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector
from models.rules.watchlist import excluded


@dataclass(frozen=True)
class ExcludedPrescriberLimits:
    """Configuration ``[prescription.excluded_prescriber]``: the list itself comes from ``zhijian.watchlist``."""

    enabled: bool = True


class ExcludedPrescriberDetector(KeyedDetector):
    name = "prescription.excluded_prescriber"
    version = "1"
    stream = "prescription"
    Limits = ExcludedPrescriberLimits  # its configuration section [prescription.excluded_prescriber]
    key = None  # judges each prescription alone, against the list every worker holds

    @classmethod
    def _conformance_params(cls) -> dict[str, Any]:
        # it alerts only on a provider the watch lists exclude: the suite lists one prescriber in fifty
        return {"excluded": ("prescriber", "prescriber_id")}

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        if not self.limits.enabled or not ctx.reference.get("watchlist"):
            return []
        found = excluded(ctx.reference, [("prescriber", event["prescriber_id"]), ("institution", event["institution_id"])],
                         event.get("event_time", "")[:10])
        if not found:
            return []
        kind, ident = found[0]
        names = ", ".join(f"{k} {i}" for k, i in found)
        return [Alert.build(
            detector=self.name, version=self.version, key=event["prescription_id"], stream=self.stream,
            severity="high", tier="violation", entity_kind=kind, entity_id=ident,
            institution_id=event["institution_id"], region=event.get("region", "unknown"), event_t=event["_t"],
            score=10.0, reason=f"prescription {event['prescription_id']} at {event['institution_id']} written by "
                               f"excluded provider(s): {names}",
            numbers={"excluded": [{"kind": k, "id": i} for k, i in found], "drugs": len(event["items"])},
            evidence=[source],
        )]
