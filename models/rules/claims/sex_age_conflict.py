"""Sex and age limits 限性别、限年龄: a diagnosis or item billed for a patient it cannot apply to.

Coding rules restrict some diagnoses by sex (prostate, ovary) or age (pregnancy, the newborn), and
the insurance catalogue restricts some items the same way (限女性, 限儿童). A claim that bills one
for a patient of the other sex, or of an impossible age, is a coding error at best and at worst a
claim for someone else (冒名就医) — the patient's sex and birth date come from the beneficiary
reference data (``zhijian.beneficiaries``); without them the claim is not judged.

The restriction dictionary is configuration. Its default follows the edits of the Medicare Code
Editor (MCE, published with the MS-DRG grouper each year): *maternity* diagnoses for women aged
9–64, *newborn/perinatal* diagnoses for age 0, the sex-specific chapters of the genital organs and
their neoplasms — each in ICD-10 and ICD-9-CM (exports carry either). ``items`` restricts catalogue
item codes the same way (empty by default: it is the region's catalogue). One alert per claim,
naming every conflicting code; the entity is the institution.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> people = {"Pm": {"birth_date": "1958-03-02", "sex": "M"}, "Pf": {"birth_date": "1950-07-01", "sex": "F"}}
>>> rt = Runtime([SexAgeConflictDetector()], reference={"beneficiary": people})
>>> def claim(n, patient, diagnoses, system=None):
...     e = {"claim_id": f"CL{n}", "claim_type": "outpatient", "institution_id": "H201", "patient": patient,
...          "event_time": "2026-10-14T10:00:00+08:00", "diagnoses": diagnoses, "items": [{"item_code": "S-US"}],
...          "total_amount": 260.0, "_t": 1791943200.0 + n}
...     if system:
...         e["diagnosis_code_system"] = system
...     return rt.process(e, Source("zhijian.claims", 0, n, f"CL{n}"))
>>> claim(1, "Pm", ["N40.0", "I10"]), claim(2, "Pf", ["N83.2"]), claim(3, "Pnobody", ["N83.2"])
([], [], [])
>>> [a] = claim(4, "Pm", ["N83.2", "I10"])
>>> a.numbers["conflicts"]
[{'code': 'N83.2', 'rule': 'female_genital', 'allowed': 'sex F'}]
>>> print(a.reason)
institution H201 billed claim CL4 for a patient (Pm, sex M, age 68) with N83.2 (female_genital: sex F)
>>> [b] = claim(5, "Pf", ["650", "V27.0"], system="ICD-9")
>>> [(c["code"], c["rule"], c["allowed"]) for c in b.numbers["conflicts"]]
[('650', 'maternity', 'age 9–64'), ('V27.0', 'maternity', 'age 9–64')]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from models.contracts.alert import Alert, Source
from models.rules.claims.after_death import beneficiary_facts, last_service_date
from models.rules.claims.icd import category, in_ranges, system_of
from models.engine.detector import Context, KeyedDetector


def _mce() -> dict[str, dict[str, Any]]:
    """The default dictionary: rule → {sex, min_age, max_age, ICD-10 and ICD-9 category ranges}."""
    return {
        "maternity": {"sex": "F", "min_age": 9, "max_age": 64,
                      "ICD-10": ["O00-O9A", "Z33-Z37", "Z39"], "ICD-9": ["630-679", "V22-V24", "V27-V28"]},
        "newborn": {"min_age": 0, "max_age": 0, "ICD-10": ["P00-P96", "Z38"], "ICD-9": ["760-779", "V30-V39"]},
        "male_genital": {"sex": "M", "ICD-10": ["C60-C63", "D07", "D29", "N40-N53"],
                         "ICD-9": ["185-187", "600-608"]},
        "female_genital": {"sex": "F", "ICD-10": ["C51-C58", "D06", "D25-D28", "N70-N98"],
                           "ICD-9": ["179-184", "614-629"]},
    }


@dataclass(frozen=True)
class Restrictions:
    """Configuration ``[claim.sex_age_conflict]``: ``diagnoses`` rule → {sex, min_age, max_age, ICD-10 and
    ICD-9 category ranges}; ``items`` item code → {sex, min_age, max_age}."""

    diagnoses: dict[str, dict[str, Any]] = field(default_factory=_mce)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)


def age_on(birth: date, day: date) -> int:
    """Whole years of age on ``day``."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _breaks(rule: dict[str, Any], sex: str | None, age: int | None) -> str | None:
    """What the patient fails of ``rule`` ('sex F', 'age 9–64'), or None."""
    if rule.get("sex") and sex in ("M", "F") and sex != rule["sex"]:
        return f"sex {rule['sex']}"
    lo, hi = rule.get("min_age"), rule.get("max_age")
    if age is None or not ((lo is not None and age < lo) or (hi is not None and age > hi)):
        return None
    if lo is None:
        return f"age ≤ {hi}"
    if hi is None:
        return f"age ≥ {lo}"
    return f"age {lo}" if lo == hi else f"age {lo}–{hi}"


class SexAgeConflictDetector(KeyedDetector):
    name = "claim.sex_age_conflict"
    version = "1"
    stream = "claim"
    Limits = Restrictions  # its configuration section [claim.sex_age_conflict]
    key = None  # judges each claim alone, against the beneficiary facts

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        facts = beneficiary_facts(ctx, event)
        if not facts:
            return []
        sex = facts.get("sex")
        age = age_on(date.fromisoformat(facts["birth_date"]), last_service_date(event)) \
            if facts.get("birth_date") else None
        system = system_of(event)
        conflicts = []
        for code in event.get("diagnoses") or ():
            cat = category(code)
            for name, rule in self.limits.diagnoses.items():
                if in_ranges(cat, rule.get(system, ())):
                    broken = _breaks(rule, sex, age)
                    if broken:
                        conflicts.append({"code": code, "rule": name, "allowed": broken})
        for it in event.get("items") or ():
            rule = self.limits.items.get(it.get("item_code"))
            broken = _breaks(rule, sex, age) if rule else None
            if broken:
                conflicts.append({"code": it["item_code"], "rule": "item", "allowed": broken})
        if not conflicts:
            return []
        inst = event["institution_id"]
        listed = ", ".join(f"{c['code']} ({c['rule']}: {c['allowed']})" for c in conflicts)
        reason = (f"institution {inst} billed claim {event['claim_id']} for a patient ({event['patient']}, sex "
                  f"{sex or '?'}, age {age if age is not None else '?'}) with {listed}")
        return [Alert.build(
            detector=self.name, version=self.version, key=event["claim_id"], stream=self.stream,
            severity="medium", tier="violation", entity_kind="institution", entity_id=inst, institution_id=inst,
            region=event.get("region", "unknown"), event_t=event["_t"], score=1.0 + 0.1 * len(conflicts),
            reason=reason,
            numbers={"claim_id": event["claim_id"], "patient": event["patient"], "sex": sex, "age": age,
                     "conflicts": conflicts, "amount": event["total_amount"]},
            evidence=[source],
        )]
