"""Duplicate charge 重复收费: the same item billed twice for one patient, day and institution.

Lines are matched on (patient pseudonym, institution, item code, service day). A
redelivered claim (same claim id and line) is not a duplicate. State is kept for
``retention_days`` of service days behind the newest one seen, so memory stays bounded.
The entity is the billing institution; 重复收费 is a violation (违规, Art. 38 of
医疗保障基金使用监督管理条例).

>>> from models.alert import Source
>>> d = DuplicateChargeDetector()
>>> def claim(cid, offset):
...     return {"claim_id": cid, "institution_id": "H1", "patient": "Pabc", "doctor_id": "D1",
...             "event_time": "2026-01-05T10:00:00+08:00", "_t": 1767578400.0,
...             "items": [{"item_code": "CT-HEAD", "quantity": 1, "unit_price": 300.0, "amount": 300.0}]}
>>> d.process(claim("C1", 1), Source("zhijian.claims", 0, 1, "C1"))
[]
>>> d.process(claim("C1", 1), Source("zhijian.claims", 0, 1, "C1"))  # redelivery
[]
>>> [a] = d.process(claim("C2", 2), Source("zhijian.claims", 0, 2, "C2"))
>>> print(a.reason)
institution H1 billed CT-HEAD twice for patient Pabc on 2026-01-05: claims C1 and C2, 300.00 charged again
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from models.alert import Alert, Source


@dataclass(frozen=True)
class DuplicateChargeConfig:
    retention_days: int = 3


@dataclass(slots=True)
class _Line:
    claim_id: str
    line: int
    amount: float
    source: Source


class DuplicateChargeDetector:
    name = "claim.duplicate_charge"
    version = "1"
    stream = "claim"
    Limits = DuplicateChargeConfig  # its configuration section [claim.duplicate_charge]

    def __init__(self, config: DuplicateChargeConfig | None = None) -> None:
        self.config = config or DuplicateChargeConfig()
        self._seen: dict[tuple[str, str, str, str], _Line] = {}
        self._by_day: dict[str, list[tuple[str, str, str, str]]] = {}
        self._days: deque[str] = deque()
        self._partition_days: dict[int, str] = {}  # partition → newest service day seen

    def process(self, event: dict[str, Any], source: Source) -> list[Alert]:
        settled_day = event["event_time"][:10]
        newest = max((it.get("service_date") or settled_day for it in event["items"]), default=settled_day)
        if newest > self._partition_days.get(source.partition, ""):
            self._partition_days[source.partition] = newest
        alerts: list[Alert] = []
        for i, item in enumerate(event["items"]):
            day = item.get("service_date") or settled_day
            key = (event["patient"], event["institution_id"], item["item_code"], day)
            first = self._seen.get(key)
            if first is None:
                self._remember(key, _Line(event["claim_id"], i, item["amount"], source), day)
                continue
            if first.claim_id == event["claim_id"] and first.line == i:
                continue  # the same line redelivered
            alerts.append(self._alert(event, item, day, first, i, source))
        return alerts

    def _horizon(self) -> str:
        """The oldest service day kept: the retention before the slowest partition's newest service day (a
        patient's claims share a partition, but partitions run at their own pace, and one read ahead
        must not wipe the state a lagging one still needs)."""
        newest = date.fromisoformat(min(self._partition_days.values()))
        return (newest - timedelta(days=self.config.retention_days)).isoformat()

    def _remember(self, key: tuple[str, str, str, str], line: _Line, day: str) -> None:
        horizon = self._horizon()
        if day < horizon:
            return  # older than the retention: not kept
        keys = self._by_day.get(day)
        if keys is None:
            while self._days and self._days[0] < horizon:
                for k in self._by_day.pop(self._days.popleft()):
                    self._seen.pop(k, None)
            keys = self._by_day[day] = []
            self._days.append(day)
            if len(self._days) > 1 and day < self._days[-2]:
                self._days = deque(sorted(self._days))
        self._seen[key] = line
        keys.append(key)

    def _alert(self, event: dict[str, Any], item: dict[str, Any], day: str, first: _Line, line: int,
               source: Source) -> Alert:
        reason = (f"institution {event['institution_id']} billed {item['item_code']} twice for patient "
                  f"{event['patient']} on {day}: claims {first.claim_id} and {event['claim_id']}, "
                  f"{item['amount']:.2f} charged again")
        return Alert.build(
            detector=self.name, version=self.version,
            key=f"{first.claim_id}#{first.line}|{event['claim_id']}#{line}",
            stream=self.stream, severity="high", tier="violation",
            entity_kind="institution", entity_id=event["institution_id"],
            institution_id=event["institution_id"], region=event.get("region", "unknown"),
            event_t=event["_t"], score=2.0, reason=reason,
            numbers={"item_code": item["item_code"], "service_date": day, "patient": event["patient"],
                     "first_claim_id": first.claim_id, "first_amount": first.amount,
                     "duplicate_claim_id": event["claim_id"], "duplicate_amount": item["amount"],
                     "doctor_id": event["doctor_id"]},
            evidence=[first.source, source],
        )
