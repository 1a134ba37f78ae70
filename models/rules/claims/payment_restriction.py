"""Payment restrictions 限定支付范围: an item the fund pays only for listed diagnoses, at institutions of listed
levels, or on listed kinds of visit — billed outside them.

The national reimbursement catalogue (国家医保药品目录, 医疗服务项目目录) restricts many items in its
remarks column: "限肿瘤患者", "限二级及以上医疗机构", "限住院" — and so do CMS's coverage determinations (an
LCD lists the ICD-10 codes a drug or test is covered for). The restrictions are configuration, one table per item
(``[claim.payment_restriction.items.<code>]``): ``diagnoses`` (ICD-10 prefixes; one of them anywhere on the claim
satisfies it — a chemotherapy day case coded Z51.1 with the cancer as second diagnosis is payable), ``levels``
(the institution's level from ``levels``: institution → level; an institution not in that table is not judged on
level), ``claim_types``, and ``basis`` (the catalogue's words, quoted in the alert). Each claim is judged alone, on
its original version (a correction is not judged again); one alert per claim names each restricted item billed
outside its restriction, which restriction, and the money. The entity is the institution.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> chemo = {"diagnoses": ["C", "D0", "D1", "D2", "D3", "D4"], "levels": ["tertiary", "secondary"],
...          "basis": "限恶性肿瘤患者, 限二级及以上医疗机构"}
>>> d = Runtime([PaymentRestrictionDetector(PaymentRestriction(items={"S-CHEMO": chemo},
...                                                                levels={"C04": "community", "H301": "tertiary"}))])
>>> def claim(cid, inst, diagnoses):
...     e = {"claim_id": cid, "institution_id": inst, "claim_type": "outpatient", "diagnoses": diagnoses,
...          "event_time": "2026-10-14T10:00:00+08:00", "_t": 1791943200.0,
...          "items": [{"item_code": "S-CHEMO", "quantity": 1, "unit_price": 450.0, "amount": 450.0}]}
...     return d.process(e, Source("zhijian.claims", 0, 1, cid))
>>> claim("C1", "H301", ["Z51.1", "C50.9"])            # a day case coded for the treatment, the cancer second
[]
>>> [a] = claim("C2", "C04", ["M54.5"])
>>> print(a.reason)
claim C2 at C04 billed 1 item outside its payment restriction: S-CHEMO 450.00 (diagnosis M54.5 not among C, D0, D1, D2, D3, D4; level community not among tertiary, secondary; 限恶性肿瘤患者, 限二级及以上医疗机构)
>>> a.numbers["amount"], a.numbers["items"][0]["failed"]
(450.0, ['diagnoses', 'levels'])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector

#: what a restriction may say (``[claim.payment_restriction.items.<code>]``)
RESTRICTION_KEYS = ("name", "diagnoses", "levels", "claim_types", "basis")


@dataclass(frozen=True)
class PaymentRestriction:
    """Configuration ``[claim.payment_restriction]``."""

    #: item code → {diagnoses: [ICD-10 prefixes], levels: [...], claim_types: [...], basis: "…", name: "…"}
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    levels: dict[str, str] = field(default_factory=dict)  # institution → its level (医疗机构级别)

    def __post_init__(self) -> None:
        for code, rule in self.items.items():
            if not isinstance(rule, dict):
                raise ValueError(f"[claim.payment_restriction.items.{code}] must be a table")
            unknown = sorted(set(rule) - set(RESTRICTION_KEYS))
            if unknown:
                raise ValueError(f"[claim.payment_restriction.items.{code}] has unknown key(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(RESTRICTION_KEYS)}")
            for k in ("diagnoses", "levels", "claim_types"):
                if k in rule and not (isinstance(rule[k], list) and all(isinstance(x, str) for x in rule[k])):
                    raise ValueError(f"[claim.payment_restriction.items.{code}] {k} must be a list of strings")


def _code(icd: str) -> str:
    return icd.replace(".", "").upper()


class PaymentRestrictionDetector(KeyedDetector):
    name = "claim.payment_restriction"
    version = "1"
    stream = "claim"
    Limits = PaymentRestriction  # its configuration section [claim.payment_restriction]
    key = None  # each claim judged alone

    def __init__(self, config: PaymentRestriction | None = None) -> None:
        super().__init__(config)
        self.config = self.limits
        self.prefixes = {code: tuple(_code(p) for p in rule.get("diagnoses", ()))
                         for code, rule in self.config.items.items()}

    def failed(self, code: str, event: dict[str, Any]) -> list[tuple[str, str]]:
        """The restrictions of item ``code`` this claim does not meet: (which, why)."""
        rule, out = self.config.items[code], []
        diagnoses = event.get("diagnoses") or []
        if rule.get("diagnoses") and not any(_code(d).startswith(self.prefixes[code]) for d in diagnoses):
            shown = ", ".join(diagnoses) if diagnoses else "none"
            out.append(("diagnoses", f"diagnosis {shown} not among {', '.join(rule['diagnoses'])}"))
        level = self.config.levels.get(event["institution_id"])
        if rule.get("levels") and level is not None and level not in rule["levels"]:
            out.append(("levels", f"level {level} not among {', '.join(rule['levels'])}"))
        if rule.get("claim_types") and event["claim_type"] not in rule["claim_types"]:
            out.append(("claim_types", f"a {event['claim_type']} claim, payable on {', '.join(rule['claim_types'])}"))
        return out

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        restricted = self.config.items
        if not restricted:
            return []
        found = []
        for item in event["items"]:
            if item["item_code"] in restricted:
                failed = self.failed(item["item_code"], event)
                if failed:
                    found.append((item, failed))
        if not found:
            return []
        amount = round(sum(item["amount"] for item, _ in found), 2)
        parts = []
        for item, failed in found:
            basis = restricted[item["item_code"]].get("basis")
            why = "; ".join([w for _, w in failed] + ([basis] if basis else []))
            parts.append(f"{item['item_code']} {item['amount']:.2f} ({why})")
        inst = event["institution_id"]
        reason = (f"claim {event['claim_id']} at {inst} billed {len(found)} item{'s' if len(found) > 1 else ''} outside "
                  f"its payment restriction: {'; '.join(parts)}")
        return [Alert.build(
            detector=self.name, version=self.version, key=event["claim_id"], stream=self.stream, severity="medium",
            tier="violation", entity_kind="institution", entity_id=inst, institution_id=inst,
            region=event.get("region", "unknown"), event_t=event["_t"], score=1.0 + len(found) / 10, reason=reason,
            numbers={"claim_id": event["claim_id"], "amount": amount, "claim_type": event["claim_type"],
                     "diagnoses": list(event.get("diagnoses") or []), "level": self.config.levels.get(inst),
                     "items": [{"item_code": item["item_code"], "amount": item["amount"],
                                "failed": [k for k, _ in failed],
                                "basis": restricted[item["item_code"]].get("basis", "")} for item, failed in found]},
            evidence=[source],
        )]
