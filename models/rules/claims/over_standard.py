"""Over-standard charge 超标准收费: a unit price above the catalogue, or more units a day than possible.

The region's price catalogue (医疗服务价格目录) fixes each item's price; billing above it is
超标准收费. A per-item maximum of units per patient per day (like CMS's medically unlikely
edits: one head CT, 24 hours of monitoring) catches the other half of the rule. Both tables
are configuration (empty: the rule is off). One alert per claim, listing every offending
line; the entity is the institution.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([OverStandardDetector(PriceCatalogue(prices={"CT-HEAD": 300.0}, max_units_per_day={"CT-HEAD": 1}))])
>>> claim = {"claim_id": "CL9", "institution_id": "K01", "patient": "Pabc", "event_time": "2026-10-14T10:00:00+08:00",
...          "items": [{"item_code": "CT-HEAD", "quantity": 2, "unit_price": 450.0, "amount": 900.0}],
...          "_t": 1791943200.0}
>>> [a] = d.process(claim, Source("zhijian.claims", 0, 2, "CL9"))
>>> a.numbers["lines"]
[{'item_code': 'CT-HEAD', 'unit_price': 450.0, 'catalogue_price': 300.0, 'quantity': 2, 'max_units_per_day': 1, 'overcharge': 600.0}]
>>> print(a.reason)
institution K01 on claim CL9: CT-HEAD at 450.00 (catalogue 300.00), 2 units (at most 1 a day); 600.00 above the standard
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class PriceCatalogue:
    """Configuration ``[claim.over_standard]``."""

    prices: dict[str, float] = field(default_factory=dict)
    max_units_per_day: dict[str, float] = field(default_factory=dict)
    tolerance_pct: float = 0.5  # rounding in hospital systems


class OverStandardDetector(KeyedDetector):
    name = "claim.over_standard"
    version = "1"
    stream = "claim"
    Limits = PriceCatalogue  # its configuration section [claim.over_standard]
    key = None  # judges each event alone

    def __init__(self, catalogue: PriceCatalogue | None = None) -> None:
        self.catalogue = catalogue or PriceCatalogue()

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        c = self.catalogue
        if not c.prices and not c.max_units_per_day:
            return []
        lines = []
        for it in event["items"]:
            code = it["item_code"]
            price, most = c.prices.get(code), c.max_units_per_day.get(code)
            over_price = price is not None and it["unit_price"] > price * (1 + c.tolerance_pct / 100)
            claim_type = event.get("claim_type")
            over_units = most is not None and claim_type != "inpatient" and it["quantity"] > most
            if not (over_price or over_units):
                continue
            allowed_units = min(it["quantity"], most) if over_units else it["quantity"]
            allowed = allowed_units * (min(price, it["unit_price"]) if price is not None else it["unit_price"])
            line = {"item_code": code, "unit_price": it["unit_price"], "catalogue_price": price,
                    "quantity": it["quantity"], "max_units_per_day": most,
                    "overcharge": round(it["amount"] - allowed, 2)}
            lines.append(line)
        if not lines:
            return []
        total = round(sum(x["overcharge"] for x in lines), 2)
        parts = []
        for x in lines:
            p = f"{x['item_code']} at {x['unit_price']:.2f}"
            if x["catalogue_price"] is not None and x["unit_price"] > x["catalogue_price"]:
                p += f" (catalogue {x['catalogue_price']:.2f})"
            if x["max_units_per_day"] is not None and x["quantity"] > x["max_units_per_day"]:
                p += f", {x['quantity']:g} units (at most {x['max_units_per_day']:g} a day)"
            parts.append(p)
        reason = (f"institution {event['institution_id']} on claim {event['claim_id']}: {'; '.join(parts)}; "
                  f"{total:.2f} above the standard")
        return [Alert.build(
            detector=self.name, version=self.version, key=event["claim_id"],
            stream=self.stream, severity="medium", tier="violation", entity_kind="institution",
            entity_id=event["institution_id"], institution_id=event["institution_id"],
            region=event.get("region", "unknown"), event_t=event["_t"], score=1.0 + total / 100, reason=reason,
            numbers={"claim_id": event["claim_id"], "lines": lines, "overcharge": total, "patient": event["patient"]},
            evidence=[source],
        )]
