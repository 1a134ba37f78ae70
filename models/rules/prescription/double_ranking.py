"""双排名 (double ranking): each month, an institution's drugs ranked by amount and, for each of its top drugs,
the prescribers ranked by what they prescribed of it — and an alert when a drug or a prescriber *enters* a top
list with a steep month-on-month rise.

The drug-use supervision of public hospitals (公立医院药品使用监测, 合理用药考核) asks every institution to rank
its drugs by amount each month and, for the top ones, their prescribers — 双排名 — and to look at what climbs:
a drug pushed for a kickback (带金销售) or a prescriber who starts writing it is where a new entry with a steep rise
comes from. Per institution (re-keyed from the prescription stream), this detector adds up each drug's amount and
each (drug, prescriber) pair's amount over the calendar month of the prescription's own ``event_time``, and the
days of that month on which the institution prescribed at all (a prescription delivered or sent twice within
:data:`~models.rules.months.SEEN_DAYS` days counts once; :mod:`models.rules.months`). When the watermark passes the month's end plus
``grace_s`` the month is closed: the ranking — the ``top_drugs`` drugs by amount, for each the ``top_prescribers``
prescribers — goes into every alert of that month, and an entry is judged against the month before by its amount
*per prescribing day* (so that a partial first month or a short February compares fairly):

* a drug in the top list that was not in the previous month's, whose daily amount rose by at least ``growth``
  (1.0: doubled) or that was not prescribed at all the month before — entity: the institution;
* a prescriber in a top drug's prescriber list who was not in it the month before, with the same rise — entity:
  the prescriber.

Every month closed is also published as a :class:`~models.contracts.report.Report` (``zhijian.reports``, kind
``double_ranking``): the whole ranking with each drug's amount a prescribing day this month and the month before,
for the workbench's 双排名 page — an institution's ranking is shown whether anything entered it or not.

Entries under ``min_amount`` in the month or ``min_prescriptions`` prescriptions are not judged (a small clinic's
ranks move by chance), nor is a month with fewer than ``min_days`` prescribing days on either side. The first month
an institution is seen only sets the reference.

>>> from datetime import datetime
>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> rt = Runtime([DoubleRankingDetector(DoubleRankingConfig(top_drugs=2, top_prescribers=1))])
>>> n = 0
>>> def rx(day, doc, drug, amount):
...     global n
...     n += 1
...     e = {"prescription_id": f"RX{n}", "institution_id": "H1", "prescriber_id": doc, "region": "310101",
...          "event_time": f"{day}T10:00:00+08:00", "items": [{"drug_code": drug, "name": drug.lower(), "amount": amount}]}
...     e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
...     return rt.process(e, Source("zhijian.prescriptions", 0, n, e["prescription_id"]))
>>> out = []
>>> for d in range(1, 31):                      # November: D1 writes A and B every day, a little C
...     for k in range(3):
...         out += rx(f"2026-11-{d:02d}", "D1", "A", 120.0) + rx(f"2026-11-{d:02d}", "D1", "B", 80.0)
...     out += rx(f"2026-11-{d:02d}", "D2", "C", 20.0)
>>> for d in range(1, 32):                      # December: D2 writes C at 10× the rate
...     for k in range(3):
...         out += rx(f"2026-12-{d:02d}", "D1", "A", 120.0) + rx(f"2026-12-{d:02d}", "D1", "B", 80.0)
...     out += rx(f"2026-12-{d:02d}", "D2", "C", 200.0) + rx(f"2026-12-{d:02d}", "D2", "C", 200.0)
>>> out += rx("2027-01-01", "D1", "A", 120.0)  # the watermark passes December's end and its grace
>>> [(a.entity_kind, a.entity_id, a.numbers["month"], a.numbers["rank"]) for a in out]
[('institution', 'H1', '2026-12', 1), ('prescriber', 'D2', '2026-12', 1)]
>>> print(out[0].reason)
drug C entered H1's top 2 by amount in 2026-12 at rank 1: 400 a prescribing day against 20 in 2026-11 (+1900 %); its top prescriber D2
>>> out[0].numbers["ranking"][:2]
[{'drug': 'C', 'amount': 12400.0, 'prescribers': [['D2', 12400.0]]}, {'drug': 'A', 'amount': 11160.0, 'prescribers': [['D1', 11160.0]]}]
>>> [(r.period, [(x["drug"], x["new"], x["per_day"], x["previous_per_day"]) for x in r.body["ranking"]]) for r in rt.reports]
[('2026-11', [('A', False, 360.0, None), ('B', False, 240.0, None)]), ('2026-12', [('C', True, 400.0, 20.0), ('A', False, 360.0, 360.0)])]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.contracts.alert import Alert, Source
from models.contracts.report import Report
from models.engine.detector import Context, KeyedDetector
from models.rules import months


@dataclass(frozen=True)
class DoubleRankingConfig:
    """Configuration ``[prescription.double_ranking]``."""

    top_drugs: int = 10  # drugs ranked by amount each month
    top_prescribers: int = 3  # prescribers ranked for each top drug
    growth: float = 1.0  # rise of the amount per prescribing day over the month before that raises an alert
    min_amount: float = 5000.0  # an entry's amount in the month below which it is not judged
    min_prescriptions: int = 20  # an entry's prescriptions in the month below which it is not judged
    min_days: int = 7  # prescribing days a month needs, on both sides, to be compared


def _ranked(amounts: dict[str, list[Any]], n: int) -> list[str]:
    return sorted(amounts, key=lambda k: (-amounts[k][0], k))[:n]


class DoubleRankingDetector(KeyedDetector):
    name = "prescription.double_ranking"
    version = "1"
    stream = "prescription"
    Limits = DoubleRankingConfig  # its configuration section [prescription.double_ranking]
    key = "institution"
    key_field = "institution_id"
    fields = ("institution_id", "prescriber_id", "region", "event_time", "items")
    grace_s = 6 * 3600.0  # settlement systems upload in batches: a month closes six hours after its end
    retention_s = 70 * 86400.0  # the month before is kept through the next one
    raised_after_evidence = True  # judged when the month closes

    @classmethod
    def _conformance_params(cls) -> dict[str, Any]:
        # three days of October, then November, closed on 1 December 06:00: the first month judged
        return {"days": 33.3, "own_scenarios": True, "scale": 0.1, "start": "2026-10-29", "limits": {"min_days": 3}}

    def __init__(self, limits: DoubleRankingConfig | None = None) -> None:
        super().__init__(limits)
        self.config = self.limits

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        m = months.month_of(ctx, event, self.grace_s, lambda: {"days": [], "drugs": {}, "pairs": {}})
        if m is None:
            return []  # late: that month was judged
        day = event["event_time"][:10]
        if day not in m["days"]:  # at most 31
            m["days"].append(day)
        if not months.first_seen(ctx.state, day, source.event_id):
            return []  # the same prescription again (a redelivery, or sent twice): counted once
        doc = event["prescriber_id"]
        for item in event["items"]:
            # sums kept to the fen (分) at every step: the same total in whatever order the events come, so that a
            # tie in the ranking breaks the same way in every layout (floats summed in another order differ)
            code, amount = item["drug_code"], round(float(item["amount"]), 2)
            drug = m["drugs"].get(code)
            if drug is None:
                drug = m["drugs"][code] = [0.0, 0, []]
            drug[0] = round(drug[0] + amount, 2)
            drug[1] += 1
            if len(drug[2]) < 3:
                drug[2].append(list(source))
            pair = m["pairs"].get(f"{code}|{doc}")
            if pair is None:  # its first prescription of the month is its evidence
                pair = m["pairs"][f"{code}|{doc}"] = [0.0, 0, list(source)]
            pair[0] = round(pair[0] + amount, 2)
            pair[1] += 1
        return []

    def on_timer(self, ctx: Context, month: str, t: float) -> list[Alert]:
        st = ctx.state
        m = months.close(st, month)
        c = self.config
        top = _ranked(m["drugs"], c.top_drugs)
        by_drug: dict[str, dict[str, list[Any]]] = {}
        for k, v in m["pairs"].items():
            code, _, doc = k.partition("|")
            if code in m["drugs"] and code in top:
                by_drug.setdefault(code, {})[doc] = v
        top_pairs = {code: _ranked(by_drug.get(code, {}), c.top_prescribers) for code in top}
        ranking = [{"drug": code, "amount": round(m["drugs"][code][0], 2),
                    "prescribers": [[doc, round(by_drug[code][doc][0], 2)] for doc in top_pairs[code]]}
                   for code in top]
        days = len(m["days"])
        prev = st.get("prev")
        ctx.publish(Report(
            kind="double_ranking", detector=self.name, version=self.version, institution_id=ctx.key,
            region=st.get("region", "unknown"), period=month, event_t=t,
            body={"top_drugs": c.top_drugs, "top_prescribers": c.top_prescribers, "prescribing_days": days,
                  "previous_month": prev["month"] if prev else None,
                  "ranking": [{**r, "new": prev is not None and r["drug"] not in prev["top"],
                               "previous_per_day": round(prev["drugs"].get(r["drug"], 0.0) / prev["days"], 2)
                               if prev and prev["days"] else None,
                               "per_day": round(r["amount"] / days, 2) if days else None}
                              for r in ranking]}))
        st["prev"] = {"month": month, "days": days, "top": top, "top_pairs": top_pairs,
                      "drugs": {k: round(v[0], 2) for k, v in m["drugs"].items()},
                      "pairs": {k: round(v[0], 2) for k, v in m["pairs"].items()}}
        if prev is None or days < c.min_days or prev["days"] < c.min_days:
            return []
        alerts = []
        for rank, code in enumerate(top, 1):
            amount, count, sources = m["drugs"][code]
            if code not in prev["top"]:
                alerts += self._entered(ctx, month, t, days, prev, rank, "institution", ctx.key, code,
                                        amount, count, prev["drugs"].get(code, 0.0), ranking, top_pairs[code],
                                        sources)
            for prank, doc in enumerate(top_pairs[code], 1):
                if doc in prev["top_pairs"].get(code, ()):
                    continue
                pamount, pcount, first = by_drug[code][doc]
                alerts += self._entered(ctx, month, t, days, prev, prank, "prescriber", doc, code, pamount,
                                        pcount, prev["pairs"].get(f"{code}|{doc}", 0.0), ranking, [doc], [first])
        return alerts

    def _entered(self, ctx: Context, month: str, t: float, days: int, prev: dict[str, Any], rank: int, kind: str,
                 entity: str, code: str, amount: float, count: int, before: float,
                 ranking: list[dict[str, Any]], prescribers: list[str], evidence: list[Any]) -> list[Alert]:
        """The alert for an entry new to its top list, if its rise and size are enough."""
        c = self.config
        if amount < c.min_amount or count < c.min_prescriptions:
            return []
        rate, rate_before = amount / days, before / prev["days"]
        growth = None if rate_before <= 0 else rate / rate_before - 1
        if growth is not None and growth < c.growth:
            return []
        rise = "not prescribed" if growth is None else f"(+{100 * growth:.0f} %)"
        was = f"against {rate_before:,.0f} in {prev['month']} {rise}" if growth is not None else \
            f"{rise} in {prev['month']}"
        if kind == "institution":
            what = f"drug {code} entered {ctx.key}'s top {c.top_drugs} by amount in {month} at rank {rank}"
            tail = f"; its top prescriber{'s' if len(prescribers) > 1 else ''} {', '.join(prescribers)}"
        else:
            what = (f"prescriber {entity} entered the top {c.top_prescribers} prescribers of drug {code} "
                    f"at {ctx.key} in {month} at rank {rank}")
            tail = ""
        reason = f"{what}: {rate:,.0f} a prescribing day {was}{tail}"
        return [Alert.build(
            detector=self.name, version=self.version, key=f"{ctx.key}/{month}/{code}/{entity if kind != 'institution' else ''}",
            stream=self.stream, severity="medium", tier="excess_usage", entity_kind=kind, entity_id=entity,
            institution_id=ctx.key, region=ctx.state.get("region", "unknown"), event_t=t,
            score=min(10.0, (growth if growth is not None else 10.0) / c.growth), reason=reason,
            numbers={"month": month, "drug": code, "rank": rank, "amount": round(amount, 2),
                     "prescriptions": count, "prescribing_days": days, "per_day": round(rate, 2),
                     "previous_month": prev["month"], "previous_per_day": round(rate_before, 2),
                     "growth": None if growth is None else round(growth, 3), "ranking": ranking},
            evidence=[Source(*s) for s in evidence],
        )]
