"""处方权 sanctions: prescribers with three or more confirmed unjustified prescriptions, proposed for the excluded list.

处方管理办法 (2007) 第四十六条: a medical institution warns a physician who wrote excess prescriptions (超常处方)
three times or more without a justification and restricts their right to prescribe (限制处方权); two more after
the restriction and the right is revoked (取消处方权). The workbench holds what that needs: every case closed
with a confirming verdict (``fraud`` or ``violation``: the analyst found no justification) over the alerts of the
per-prescription rules — over-limit supply, too many drugs, same-action duplicates, controlled drugs, the
antimicrobial excess-usage chart. Each distinct prescription in the evidence of such a case's alerts counts once
(an excess-usage day counts as one), in the ``period_days`` before now by the alert's event time. A prescriber
who reaches ``threshold`` and is not on a watch list already is *proposed*: the page names the prescriptions,
the cases and the verdicts, and a supervisor confirms the excluded-list entry (``zhijian.watchlist``, which the
prescription rules then read) with its basis filled in. Nothing is excluded without that confirmation.

>>> from datetime import datetime, timezone
>>> from streams.workbench.cases import CaseBook
>>> book, alerts = CaseBook(), {}
>>> for n in range(4):
...     a = {"alert_id": f"a{n}", "detector": "prescription.over_supply", "stream": "prescription",
...          "entity": {"kind": "prescriber", "id": "D7"}, "institution_id": "H1", "region": "310101",
...          "score": 1.0, "severity": "high", "status": "open", "event_time": f"2026-11-0{n + 1}T10:00:00+08:00",
...          "reason": "", "numbers": {}, "evidence": [{"topic": "zhijian.prescriptions", "partition": 0,
...                                                   "offset": n, "event_id": f"RX{n // 2}"}]}
...     alerts[a["alert_id"]] = a
...     case = book.add(a)
>>> _ = case.change("closed", user="li", at="2026-11-05T10:00:00+00:00", verdict="violation")
>>> [(p.prescriber, p.count, p.prescriptions) for p in proposals(book.cases.values(), alerts, {},
...                                                            datetime(2026, 12, 1, tzinfo=timezone.utc))]
[]
>>> alerts["a3"]["evidence"][0]["event_id"] = "RX3"      # three distinct prescriptions now
>>> [(p.prescriber, p.count, p.prescriptions) for p in proposals(book.cases.values(), alerts, {},
...                                                            datetime(2026, 12, 1, tzinfo=timezone.utc))]
[('D7', 3, ['RX0', 'RX1', 'RX3'])]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from streams.workbench.priority import CONFIRMING

#: The per-prescription rules whose confirmed alerts are excess prescriptions (超常处方) in the sense of 第四十六条
SANCTIONED_RULES = ("prescription.over_supply", "prescription.too_many_drugs", "prescription.same_action",
                    "prescription.controlled_drugs", "prescription.excess_usage")
THRESHOLD = 3  # confirmed unjustified prescriptions that call for the restriction
PERIOD_DAYS = 365


@dataclass
class Proposal:
    """A prescriber to restrict: what was confirmed against them, for the supervisor to check and confirm."""

    prescriber: str
    institution: str
    prescriptions: list[str] = field(default_factory=list)  # distinct prescription ids, sorted
    cases: list[str] = field(default_factory=list)  # case ids
    verdicts: list[str] = field(default_factory=list)
    last: str = ""  # the latest alert's event time

    @property
    def count(self) -> int:
        return len(self.prescriptions)

    def basis(self) -> str:
        """The excluded-list entry's basis, in the regulation's words."""
        return (f"处方管理办法第四十六条: {self.count} 张超常处方经核查无正当理由 "
                f"({', '.join(self.prescriptions[:10])}{' …' if self.count > 10 else ''})")


def proposals(cases: Iterable[Any], alerts: Mapping[str, dict[str, Any]], watchlist: Mapping[str, Any],
              now: datetime, threshold: int = THRESHOLD, period_days: int = PERIOD_DAYS) -> list[Proposal]:
    """The prescribers to propose, most prescriptions first (see the module)."""
    since = (now - timedelta(days=period_days)).astimezone(timezone.utc).isoformat()
    found: dict[str, Proposal] = {}
    for case in cases:
        if case.status != "closed" or case.verdict not in CONFIRMING or case.entity_kind != "prescriber":
            continue
        for aid in case.alert_ids:
            a = alerts.get(aid)
            if a is None or a["detector"] not in SANCTIONED_RULES or a.get("status") == "withdrawn" \
                    or _utc(a["event_time"]) < since:
                continue
            p = found.setdefault(case.entity_id, Proposal(case.entity_id, a.get("institution_id", "")))
            ids = [e["event_id"] for e in a.get("evidence") or ()] or [aid]
            if a["detector"] == "prescription.excess_usage":
                ids = [f"{case.entity_id}@{(a.get('numbers') or {}).get('day', a['event_time'][:10])}"]
            p.prescriptions += ids
            if case.case_id not in p.cases:
                p.cases.append(case.case_id)
                p.verdicts.append(case.verdict)
            p.last = max(p.last, a["event_time"])
    out = []
    for p in found.values():
        p.prescriptions = sorted(set(p.prescriptions))
        if p.count >= threshold and f"prescriber:{p.prescriber}" not in watchlist:
            out.append(p)
    return sorted(out, key=lambda p: (-p.count, p.prescriber))


def _utc(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(timezone.utc).isoformat()
