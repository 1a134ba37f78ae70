"""Audit findings 稽查结论: the verdicts on institutions the learned score learns from (:mod:`.learned`).

A region's past inspections (飞行检查, 专项检查) come as a CSV file with the header
``institution_id,verdict,decided_on`` — verdict ``fraud``, ``violation`` or ``clean``, the day decided in ISO
format — and ``zhijian verdicts import`` publishes each row to ``zhijian.institution-verdicts`` (key: the
institution id). The workbench publishes there too when an analyst closes a case as fraud or violation. The risk
scorer reads the topic whole: an institution's latest verdict (by day decided, then arrival) is its label.

>>> rows = parse_csv("institution_id,verdict,decided_on\\nH1,fraud,2025-06-01\\nH2, clean ,2025-07-01\\n", "audit.csv")
>>> [(r["institution_id"], r["verdict"], r["source"]) for r in rows]
[('H1', 'fraud', 'import:audit.csv'), ('H2', 'clean', 'import:audit.csv')]
>>> parse_csv("institution_id,verdict,decided_on\\nH1,guilty,2025-06-01\\n", "a.csv")
Traceback (most recent call last):
...
streams.workbench.risk.verdicts.VerdictError: a.csv line 2: verdict 'guilty' is not fraud, violation or clean
>>> labels = Labels()
>>> for r in rows + [{"institution_id": "H1", "verdict": "clean", "decided_on": "2024-01-01"}]:
...     _ = labels.apply(r)
>>> labels.labels()                  # H1's later verdict stands
{'H1': True, 'H2': False}
"""
from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from streams.workbench.risk.learned import POSITIVE, VERDICTS

HEADER = ("institution_id", "verdict", "decided_on")


class VerdictError(ValueError):
    """A row of a verdicts file that cannot be published (the message names the line and the fix)."""


def record(institution_id: str, verdict: str, decided_on: str, source: str, **extra: Any) -> dict[str, Any]:
    return {"schema_version": 1, "institution_id": institution_id, "verdict": verdict, "decided_on": decided_on,
            "source": source, **extra}


def parse_csv(text: str, name: str) -> list[dict[str, Any]]:
    """The records of a verdicts file; the first bad row raises :class:`VerdictError` naming its line."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [h for h in HEADER if h not in (reader.fieldnames or [])]
    if missing:
        raise VerdictError(f"{name}: the header must name {', '.join(HEADER)} (missing {', '.join(missing)})")
    out = []
    for row in reader:
        line = reader.line_num
        inst, verdict, decided = (str(row.get(h) or "").strip() for h in HEADER)
        if not inst:
            raise VerdictError(f"{name} line {line}: no institution_id")
        if verdict not in VERDICTS:
            raise VerdictError(f"{name} line {line}: verdict {verdict!r} is not fraud, violation or clean")
        try:
            date.fromisoformat(decided)
        except ValueError:
            raise VerdictError(f"{name} line {line}: decided_on {decided!r} is not a date like 2025-06-30") from None
        out.append(record(inst, verdict, decided, f"import:{name}"))
    return out


class Labels:
    """The latest verdict of each institution, from the verdict records in any order of arrival."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[str, int, str]] = {}  # institution → (decided_on, arrival, verdict)
        self._n = 0

    def apply(self, r: Any) -> bool:
        """One record (a dict, or anything else: ignored); whether it was a verdict."""
        if not isinstance(r, dict) or r.get("verdict") not in VERDICTS or not r.get("institution_id"):
            return False
        self._n += 1
        key = (str(r.get("decided_on", "")), self._n, r["verdict"])
        inst = str(r["institution_id"])
        if inst not in self._latest or key[:2] >= self._latest[inst][:2]:
            self._latest[inst] = key
        return True

    def labels(self) -> dict[str, bool]:
        """institution → True (fraud or violation) or False (clean)."""
        return {i: v[2] in POSITIVE for i, v in sorted(self._latest.items())}
