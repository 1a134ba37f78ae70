"""Settlement after death 死亡后结算 (冒用已故参保人员医保卡): a service dated after the patient died.

The civil registry's date of death reaches zhijian as beneficiary reference data
(``zhijian.beneficiaries``, followed under the patient's pseudonym). A claim is judged on its
*latest service date* — a line's ``service_date``, the discharge date, the end of the claim period,
or, when it names none, the day it was settled: a stay that ends on the day of death and is
settled later is normal, a visit or a dispensing after it is not. ``grace_days`` allows registry
dates that lag by a day or two. One alert per claim; the entity is the institution. The alert gives
the days after death, not the date (the date and the institution together could name the person).

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> reference = {"beneficiary": {"Pdead": {"birth_date": "1940-05-01", "sex": "M", "death_date": "2026-09-30"}}}
>>> rt = Runtime([SettlementAfterDeathDetector()], reference=reference)
>>> def claim(n, patient, day, **extra):
...     e = {"claim_id": f"CL{n}", "claim_type": "pharmacy", "institution_id": "P03", "patient": patient,
...          "event_time": f"{day}T10:00:00+08:00", "items": [{"item_code": "D-AML5", "service_date": day}],
...          "total_amount": 120.0, "fund_paid": 72.0, "_t": 1791939600.0 + n, **extra}
...     return rt.process(e, Source("zhijian.claims", 1, n, f"CL{n}"))
>>> claim(1, "Pdead", "2026-09-30"), claim(2, "Palive", "2026-10-10")
([], [])
>>> [a] = claim(3, "Pdead", "2026-10-12")
>>> a.entity_id, a.numbers["days_after_death"], a.numbers["last_service_date"]
('P03', 12, '2026-10-12')
>>> print(a.reason)
institution P03 settled claim CL3 (pharmacy, 120.00, fund 72.00) for a patient (Pdead) with a service on 2026-10-12, 12 d after the registered death
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class DeathRule:
    """Configuration ``[claim.after_death]``."""

    grace_days: int = 0  # days a service may follow the registered death (a registry that lags)


def last_service_date(event: dict[str, Any]) -> date:
    """The latest day the claim says a service was given (see the module's docstring)."""
    days = [it["service_date"] for it in event.get("items") or () if it.get("service_date")]
    days += [d for d in (event.get("discharge_date"), (event.get("claim_period") or {}).get("end")) if d]
    if days:
        return max(date.fromisoformat(d[:10]) for d in days)
    if "event_time" in event:
        return datetime.fromisoformat(event["event_time"]).date()
    return datetime.fromtimestamp(event["_t"], timezone.utc).date()


def beneficiary_facts(ctx: Context, event: dict[str, Any]) -> dict[str, Any] | None:
    """The birth date, sex and death of the claim's patient, from the reference data (None: not known)."""
    return ctx.reference.get("beneficiary", {}).get(event["patient"])


class SettlementAfterDeathDetector(KeyedDetector):
    name = "claim.after_death"
    version = "1"
    stream = "claim"
    Limits = DeathRule  # its configuration section [claim.after_death]
    key = None  # judges each claim alone, against the beneficiary facts

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        facts = beneficiary_facts(ctx, event)
        if not facts or not facts.get("death_date"):
            return []
        died = date.fromisoformat(facts["death_date"])
        served = last_service_date(event)
        after = (served - died).days
        if after <= self.limits.grace_days:
            return []
        inst = event["institution_id"]
        reason = (f"institution {inst} settled claim {event['claim_id']} ({event.get('claim_type', 'claim')}, "
                  f"{event['total_amount']:.2f}, fund {event['fund_paid']:.2f}) for a patient ({event['patient']}) "
                  f"with a service on {served.isoformat()}, {after} d after the registered death")
        return [Alert.build(
            detector=self.name, version=self.version, key=event["claim_id"], stream=self.stream,
            severity="high", tier="fraud", entity_kind="institution", entity_id=inst, institution_id=inst,
            region=event.get("region", "unknown"), event_t=event["_t"], score=1.0 + min(after, 365) / 365,
            reason=reason,
            numbers={"claim_id": event["claim_id"], "patient": event["patient"], "days_after_death": after,
                     "last_service_date": served.isoformat(), "amount": event["total_amount"],
                     "fund_paid": event["fund_paid"]},
            evidence=[source],
        )]
