"""Unbundling 分解项目收费: a package's components billed separately instead of the package.

A price catalogue defines packages (a liver function panel, a surgical procedure) that
include component items; billing two or more components on one claim without the package
charges more than the package price — the pattern CMS's NCCI procedure-to-procedure edits
catch. The package dictionary is configuration (with none the rule is off). The entity is
the institution.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([UnbundlingDetector(PackageDictionary({"LIVER": ["ALT", "AST", "TBIL", "ALB"]}, {"LIVER": 80.0}))])
>>> claim = {"claim_id": "CL1", "institution_id": "H2", "patient": "Pabc", "event_time": "2026-10-14T10:00:00+08:00",
...          "items": [{"item_code": c, "amount": 30.0} for c in ("CONSULT", "ALT", "AST", "TBIL")], "_t": 1791943200.0}
>>> [a] = d.process(claim, Source("zhijian.claims", 3, 11, "CL1"))
>>> a.numbers["package"], a.numbers["components"], a.numbers["components_amount"], a.numbers["package_price"]
('LIVER', ['ALT', 'AST', 'TBIL'], 90.0, 80.0)
>>> print(a.reason)
institution H2 billed ALT, AST, TBIL separately on claim CL1 (90.00) instead of package LIVER (80.00)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class PackageDictionary:
    """Configuration ``[claim.unbundling]``: package code → component codes, and package prices."""

    packages: dict[str, list[str]] = field(default_factory=dict)
    prices: dict[str, float] = field(default_factory=dict)
    min_components: int = 2


class UnbundlingDetector(KeyedDetector):
    name = "claim.unbundling"
    version = "1"
    stream = "claim"
    Limits = PackageDictionary  # its configuration section [claim.unbundling]
    key = None  # judges each event alone

    def __init__(self, dictionary: PackageDictionary | None = None) -> None:
        self.dictionary = dictionary or PackageDictionary()
        self._component_of: dict[str, list[str]] = {}
        for package, components in self.dictionary.packages.items():
            for c in components:
                self._component_of.setdefault(c, []).append(package)

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        if not self._component_of:
            return []
        codes = {it["item_code"]: it for it in event["items"]}
        found: dict[str, list[str]] = {}
        for code in codes:
            for package in self._component_of.get(code, ()):
                found.setdefault(package, []).append(code)
        alerts = []
        for package, components in sorted(found.items()):
            if package in codes or len(components) < self.dictionary.min_components:
                continue
            components.sort()
            amount = round(sum(codes[c]["amount"] for c in components), 2)
            price = self.dictionary.prices.get(package)
            cost = f" instead of package {package}" + (f" ({price:.2f})" if price is not None else "")
            reason = (f"institution {event['institution_id']} billed {', '.join(components)} separately on claim "
                      f"{event['claim_id']} ({amount:.2f}){cost}")
            alerts.append(Alert.build(
                detector=self.name, version=self.version, key=f"{event['claim_id']}|{package}",
                stream=self.stream, severity="medium", tier="violation", entity_kind="institution",
                entity_id=event["institution_id"], institution_id=event["institution_id"],
                region=event.get("region", "unknown"), event_t=event["_t"],
                score=amount / price if price else float(len(components)), reason=reason,
                numbers={"claim_id": event["claim_id"], "package": package, "components": components,
                         "components_amount": amount, "package_price": price, "patient": event["patient"]},
                evidence=[source],
            ))
        return alerts
