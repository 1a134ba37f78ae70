"""Diagnosis codes 疾病诊断编码: ICD-9-CM and ICD-10 written the many ways exports write them.

Exports write ``J18.9``, ``J189`` or ``j18.9``; ICD-9-CM ``486``, ``V58.11`` or ``V5811``. A code is
compared by its *category* — the first three characters without the dot — and its system is the
claim's ``diagnosis_code_system`` (contract v2) or, on a v1 claim, a guess: a code that starts with a
digit is ICD-9; a letter, ICD-10 (ICD-9's V and E codes are then read as ICD-10, which is why v2
names the system).

>>> category("j18.9"), category("V58.11"), category("486")
('J18', 'V58', '486')
>>> system_of({"diagnoses": ["486"]}), system_of({"diagnoses": ["V5811"], "diagnosis_code_system": "ICD-9"})
('ICD-9', 'ICD-9')
>>> in_ranges("O9A", ["O00-O9A"]), in_ranges("P07", ["O00-O9A"]), in_ranges("V58", ["V56-V58"])
(True, False, True)
>>> principal({"diagnoses": ["I10", "J18.9"], "principal_diagnosis": "J18.9"}), principal({"diagnoses": ["I10"]})
('J18.9', 'I10')
"""
from __future__ import annotations

from typing import Any, Iterable


def normalize(code: str) -> str:
    """Upper case, no dot, no spaces: ``j18.9`` → ``J189``."""
    return code.replace(".", "").replace(" ", "").upper()


def category(code: str) -> str:
    """The three-character category of a diagnosis code."""
    return normalize(code)[:3]


def system_of(event: dict[str, Any]) -> str:
    """``ICD-9`` or ``ICD-10``: as the claim names it, else guessed from its first diagnosis."""
    named = event.get("diagnosis_code_system")
    if named:
        return named
    first = next(iter(event.get("diagnoses") or ()), "")
    return "ICD-9" if first[:1].isdigit() else "ICD-10"


def in_ranges(cat: str, ranges: Iterable[str]) -> bool:
    """Whether a category lies in one of ``"LO-HI"`` (inclusive) or equals a single ``"CAT"``."""
    for r in ranges:
        lo, _, hi = r.partition("-")
        if lo <= cat <= (hi or lo):
            return True
    return False


def principal(event: dict[str, Any]) -> str | None:
    """The principal diagnosis 主要诊断: named (v2), else the first listed — exports list it first."""
    named = event.get("principal_diagnosis")
    if named:
        return named
    return next(iter(event.get("diagnoses") or ()), None)
