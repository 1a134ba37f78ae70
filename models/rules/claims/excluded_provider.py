"""Claims from excluded providers 黑名单机构、医师结算: a claim naming an institution, settlement site or
physician on the excluded list (:mod:`models.rules.watchlist`).

A provider excluded from the fund (暂停医保结算, 解除医保协议) may not bill it; a claim that names one — as
the billing institution, the site it was settled at, the doctor, or an attending or operating physician —
is an alert, one per claim, listing every excluded provider it names. The entity is the first of them.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> reference = {"watchlist": {"doctor:D9": {"list": "excluded", "until": "2027-06-30"}}}
>>> rt = Runtime([ExcludedProviderDetector()], reference=reference)
>>> claim = {"claim_id": "CL1", "institution_id": "H1", "doctor_id": "D9", "settlement_site": "H1",
...          "claim_type": "outpatient", "total_amount": 120.0, "fund_paid": 80.0, "region": "310101",
...          "event_time": "2026-11-02T10:00:00+08:00", "_t": 1793584800.0}
>>> [a] = rt.process(claim, Source("zhijian.claims", 0, 1, "CL1"))
>>> a.entity_kind, a.entity_id, a.numbers["excluded"], a.numbers["fund_paid"]
('doctor', 'D9', [{'kind': 'doctor', 'id': 'D9', 'as': 'doctor'}], 80.0)
>>> print(a.reason)
claim CL1 at H1 names excluded provider(s): doctor D9 (doctor); the fund paid 80.00
>>> rt.process({**claim, "doctor_id": "D1"}, Source("zhijian.claims", 0, 2, "CL2"))
[]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector
from models.rules.watchlist import excluded


@dataclass(frozen=True)
class ExcludedProviderLimits:
    """Configuration ``[claim.excluded_provider]``: the list itself comes from ``zhijian.watchlist``."""

    enabled: bool = True


def providers(event: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(kind, id, as what) of every provider a claim names."""
    out = [("institution", event.get("institution_id", ""), "institution"),
           ("institution", event.get("settlement_site", ""), "settlement site"),
           ("doctor", event.get("doctor_id", ""), "doctor")]
    physicians = event.get("physicians") or {}
    for role in ("attending", "operating"):
        if physicians.get(role):
            out.append(("doctor", physicians[role], role))
    for other in physicians.get("others") or ():
        out.append(("doctor", other, "physician"))
    return [p for p in out if p[1]]


class ExcludedProviderDetector(KeyedDetector):
    name = "claim.excluded_provider"
    version = "1"
    stream = "claim"
    Limits = ExcludedProviderLimits  # its configuration section [claim.excluded_provider]
    key = None  # judges each claim alone, against the list every worker holds

    @classmethod
    def _conformance_params(cls) -> dict[str, Any]:
        # it alerts only on a provider the watch lists exclude: the suite lists one doctor in fifty
        return {"excluded": ("doctor", "doctor_id")}

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        if not self.limits.enabled or not ctx.reference.get("watchlist"):
            return []
        named = providers(event)
        found = excluded(ctx.reference, [(k, i) for k, i, _ in named], event.get("event_time", "")[:10])
        if not found:
            return []
        listed = [{"kind": k, "id": i, "as": role} for k, i, role in named if (k, i) in found]
        seen, unique = set(), []
        for x in listed:  # an institution that is also the settlement site is listed once
            if (x["kind"], x["id"]) not in seen:
                seen.add((x["kind"], x["id"]))
                unique.append(x)
        kind, ident = found[0]
        names = ", ".join(f"{x['kind']} {x['id']} ({x['as']})" for x in unique)
        reason = (f"claim {event['claim_id']} at {event['institution_id']} names excluded provider(s): {names}; "
                  f"the fund paid {event['fund_paid']:.2f}")
        return [Alert.build(
            detector=self.name, version=self.version, key=event["claim_id"], stream=self.stream,
            severity="high", tier="fraud", entity_kind=kind, entity_id=ident,
            institution_id=event["institution_id"], region=event.get("region", "unknown"),
            event_t=event["_t"], score=10.0, reason=reason,
            numbers={"excluded": unique, "fund_paid": event["fund_paid"], "total_amount": event["total_amount"]},
            evidence=[source],
        )]
