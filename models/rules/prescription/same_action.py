"""Same-action duplication 同类药物重复使用: two drugs of one pharmacological subgroup on one prescription.

处方点评规范: two or more drugs with the same mechanism (same ATC level 4, e.g. C08CA, the
dihydropyridine calcium-channel blockers) on one prescription is an irrational combination.
The entity is the prescriber.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([SameActionDetector()])
>>> rx = {"prescription_id": "RX1", "institution_id": "C1", "department": "GP", "prescriber_id": "D3",
...       "visit_type": "long_term", "_t": 1767225600.0,
...       "items": [{"drug_code": "A", "name": "amlodipine 5 mg", "atc_code": "C08CA01"},
...                 {"drug_code": "N", "name": "nifedipine CR 30 mg", "atc_code": "C08CA05"},
...                 {"drug_code": "L", "name": "losartan 50 mg", "atc_code": "C09CA01"}]}
>>> [a] = d.process(rx, Source("zhijian.prescriptions", 2, 5, "RX1"))
>>> a.numbers["groups"]
{'C08CA': ['A', 'N']}
>>> print(a.reason)
prescriber D3 (C1/GP): prescription RX1 combines A + N (same ATC group C08CA)
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class SameActionConfig:
    """Configuration ``[prescription.same_action]``: ATC level-4 groups allowed together."""

    allowed_groups: list[str] = field(default_factory=list)


class SameActionDetector(KeyedDetector):
    name = "prescription.same_action"
    version = "1"
    stream = "prescription"
    Limits = SameActionConfig  # its configuration section [prescription.same_action]
    key = None  # judges each event alone

    def __init__(self, config: SameActionConfig | None = None) -> None:
        self.config = config or SameActionConfig()
        self._allowed = set(self.config.allowed_groups)

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        groups: dict[str, set[str]] = defaultdict(set)
        for it in event["items"]:
            atc = it.get("atc_code", "")
            if len(atc) >= 5 and atc[:5] not in self._allowed:
                groups[atc[:5]].add(it["drug_code"])
        clashes = {g: sorted(d) for g, d in sorted(groups.items()) if len(d) > 1}
        if not clashes:
            return []
        what = "; ".join(f"{' + '.join(codes)} (same ATC group {g})" for g, codes in clashes.items())
        reason = (f"prescriber {event['prescriber_id']} ({event['institution_id']}/{event['department']}): "
                  f"prescription {event['prescription_id']} combines {what}")
        return [Alert.build(
            detector=self.name, version=self.version, key=event["prescription_id"],
            stream=self.stream, severity="medium", tier="violation",
            entity_kind="prescriber", entity_id=event["prescriber_id"],
            institution_id=event["institution_id"], region=event.get("region", "unknown"),
            event_t=event["_t"], score=float(max(len(v) for v in clashes.values())), reason=reason,
            numbers={"groups": clashes}, evidence=[source],
        )]
