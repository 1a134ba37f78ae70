"""Excess usage of any drug 超常预警 (全部药品), stricter for key-monitored drugs 重点监控药品.

临床用药超常预警 asks that every drug's volume be watched against its history, and 重点监控合理用药药品
(the national key-monitored list, 2019) that the listed drugs be watched more closely. Per institution (re-keyed),
each prescriber's day is the number of their outpatient, emergency and long-term prescriptions and, for each drug,
how many carry it (with its amount and DDDs). A peer-adjusted chart per prescriber and drug
(:class:`~models.rules.anomaly.peer_share.PeerShareCUSUM`) adds up the evidence that the prescriber's share of
prescriptions with the drug rose (its odds ``ratio``-fold) beyond their own baseline (the weeks before the last, faded over
about a month: in effect month on month, and a rise that creeps up over a week is not learned on the way) *and* beyond what the rest of their department shows that day: when the whole department writes
more of it (an influenza season, a new guideline), nobody is singled out. Drugs on the key-monitored list
(``key_monitored``: drug code → name and basis, the region's list; and the drugs a supervisor puts on the
workbench's watch lists — an entry ``drug:<code>`` on the list ``key_monitored``, up to its last day, applied from
when it reaches the worker) get ``key_ratio`` and ``key_threshold`` (stricter); antimicrobials (``exclude_atc_prefixes``, J01) have their own chart, ``prescription.excess_usage``.
A prescriber with fewer than ``min_prescriptions`` prescriptions in those weeks is not judged. One alert per
episode and prescriber–drug, re-armed when the evidence is back at zero; its evidence is the prescriber's
prescriptions with the drug on the day it was raised.

>>> import random
>>> from datetime import datetime
>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> rng = random.Random(8)
>>> key = {"D-OXI1G": {"name": "oxiracetam 1 g", "basis": "国家重点监控合理用药药品目录(2019)"}}
>>> rt = Runtime([DrugUsageDetector(DrugUsageLimits(key_monitored=key))])
>>> n = [0]
>>> def day(d, push=0.0, season=0.0):
...     out = []
...     for doc in ("D1", "D2", "D3", "D4"):
...         for i in range(40):
...             items = [{"drug_code": "D-IBU200", "atc_code": "M01AE01", "amount": 2.4}]
...             if rng.random() < 0.02 + (push if doc == "D1" else 0.0):
...                 items.append({"drug_code": "D-OXI1G", "atc_code": "N06BX24", "amount": 608.0})
...             if rng.random() < 0.1 + season:
...                 items.append({"drug_code": "D-NAC200", "atc_code": "R05CB01", "amount": 13.5, "ddd_count": 6})
...             n[0] += 1
...             e = {"prescription_id": f"RX{n[0]}", "institution_id": "H1", "department": "IM", "prescriber_id": doc,
...                  "region": "310104", "visit_type": "outpatient", "items": items,
...                  "event_time": f"2026-10-{d:02d}T{9 + i // 8:02d}:{i % 8 * 7:02d}:00+08:00"}
...             e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
...             out += rt.process(e, Source("zhijian.prescriptions", 0, n[0], e["prescription_id"]))
...     return out
>>> [a for d in range(1, 15) for a in day(d)]
[]
>>> [a for d in range(15, 22) for a in day(d, season=0.25)]     # everyone writes acetylcysteine: a season
[]
>>> alerts = [a for d in range(22, 27) for a in day(d, push=0.15)]
>>> [(a.entity_id, a.numbers["drug"], a.numbers["day"]) for a in alerts]
[('D1', 'D-OXI1G', '2026-10-25')]
>>> print(alerts[0].reason)
prescriber D1 (H1/IM): oxiracetam 1 g (key-monitored: 国家重点监控合理用药药品目录(2019)) on 4 of 40 prescriptions (10 %) on 2026-10-25, expected 2 % from their own history (2 %) and their department's (the others' share today 2 %, usual 2 %); amount 2,432 yuan; evidence of 1.5× the odds 9.1 (threshold 8)
>>> len(alerts[0].evidence), alerts[0].numbers["amount"]
(3, 2432.0)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context
from models.rules.anomaly.cusum import Episode
from models.rules.anomaly.daily import DailyChart
from models.rules.anomaly.peer_share import PeerShareCUSUM, WeeklyTotals, successes, trials

def _pair(name: str) -> tuple[str, str]:
    doc, code = name.split("\t")
    return doc, code


def learn_day(learned: dict[str, float], weeks: WeeklyTotals, charts: dict[str, Any], unit: str, group: str,
              code: str, count: float, episode: Episode) -> None:
    """Add a judged day's ``count`` of ``unit``'s trials carrying ``code`` (and its ``group``'s) to ``learned``, and
    keep the unit's chart of ``code`` in ``charts`` — or drop it when nothing was learned and nothing is building."""
    learned[successes(unit, code)] = count
    learned[successes(f"@{group}", code)] = learned.get(successes(f"@{group}", code), 0.0) + count
    if episode.chart.statistic == 0 and episode.armed and weeks.base(successes(unit, code)) == 0 and not count:
        charts.pop(f"{unit}\t{code}", None)
    else:
        charts[f"{unit}\t{code}"] = episode.dump()


def learn_trials(learned: dict[str, float], unit: str, group: str, n: float) -> None:
    """Add a day's ``n`` trials of ``unit`` (and of its ``group``) to ``learned``."""
    learned[trials(unit)] = n
    learned[trials(f"@{group}")] = learned.get(trials(f"@{group}"), 0.0) + n


EVIDENCE_PER_DAY = 3  # prescriptions kept as evidence per prescriber, drug and day
WATCHED_FROM = 1.0  # a chart's evidence from which its day's prescriptions are kept (key-monitored drugs: always)


@dataclass(frozen=True)
class DrugUsageLimits:
    """Configuration ``[prescription.drug_usage]``."""

    ratio: float = 2.0  # the rise of the odds the chart is tuned to find, for any drug
    threshold: float = 15.0  # evidence (log-likelihood ratio) that raises the alert
    key_ratio: float = 1.5  # the same for a key-monitored drug (stricter)
    key_threshold: float = 8.0
    min_prescriptions: int = 150  # a prescriber's prescriptions in the baseline weeks before they are judged
    #: drug code → {"name", "basis"}: the region's key-monitored list 重点监控药品目录 (its codes are the region's)
    key_monitored: dict[str, dict[str, str]] = field(default_factory=dict)
    exclude_atc_prefixes: list[str] = field(default_factory=lambda: ["J01"])  # antimicrobials: excess_usage's


class DrugUsageDetector(DailyChart):
    name = "prescription.drug_usage"
    version = "1"
    stream = "prescription"
    Limits = DrugUsageLimits  # its configuration section [prescription.drug_usage]
    key = "institution"
    key_field = "institution_id"
    fields = ("institution_id", "department", "prescriber_id", "region", "visit_type", "event_time", "items")
    max_evidence = 0  # evidence is kept per prescriber and drug (counted)
    watch_kind = "drug"  # the watch list's entries ``drug:<code>`` on ``key_monitored`` are key-monitored too

    def __init__(self, limits: DrugUsageLimits | None = None) -> None:
        super().__init__(limits)
        self._excluded = tuple(self.limits.exclude_atc_prefixes)
        self._key = self.limits.key_monitored

    def key_of(self, event: dict[str, Any]) -> str | None:
        return None if event["visit_type"] == "inpatient" else event["institution_id"]

    _last: tuple[dict[str, Any], dict[str, list[float]]] | None = None

    def _drugs(self, event: dict[str, Any]) -> dict[str, list[float]]:
        """:meth:`_sum_drugs` of the event, once per event (``values`` and ``counted`` both ask for it)."""
        last = self._last
        if last is not None and last[0] is event:
            return last[1]
        drugs = self._sum_drugs(event)
        self._last = (event, drugs)
        return drugs

    def _sum_drugs(self, event: dict[str, Any]) -> dict[str, list[float]]:
        """The prescription's drugs but the excluded ones: drug code → [amount, DDDs] over its items."""
        drugs: dict[str, list[float]] = {}
        for it in event["items"]:
            if not str(it.get("atc_code", "")).startswith(self._excluded):
                sums = drugs.setdefault(str(it["drug_code"]), [0.0, 0.0])
                sums[0] += float(it.get("amount") or 0.0)
                sums[1] += float(it.get("ddd_count") or 0.0)
        return drugs

    def values(self, event: dict[str, Any]) -> dict[str, float] | None:
        doc = event["prescriber_id"]
        out = {f"n\t{event.get('department') or '-'}\t{doc}": 1.0}
        for code, (amount, ddd) in self._drugs(event).items():
            out[f"k\t{doc}\t{code}"] = 1.0
            out[f"a\t{doc}\t{code}"] = amount
            if ddd:
                out[f"d\t{doc}\t{code}"] = ddd
        return out

    def counted(self, ctx: Context, day: str, event: dict[str, Any], source: Source) -> None:
        st, doc = ctx.state, event["prescriber_id"]
        charts = st.get("charts", {})
        for code in self._drugs(event):
            kept = charts.get(f"{doc}\t{code}")
            if self._listed(ctx, code, day) is None and (kept is None or kept[0] < WATCHED_FROM):
                continue
            ev = st.setdefault("ev", {}).setdefault(day, {}).setdefault(f"{doc}\t{code}", [])
            if len(ev) < EVIDENCE_PER_DAY:
                ev.append(list(source))

    def new_chart(self) -> None:
        return None  # the charts are per prescriber and drug, in the state (judge)

    def _listed(self, ctx: Context, code: str, day: str) -> dict[str, str] | None:
        """The key-monitored entry of drug ``code`` ({name, basis}): on the region's configured list, or on the
        workbench's watch list (``drug:<code>``, list ``key_monitored``, up to its ``until`` day); None if neither."""
        entry = self._key.get(code)
        if entry is not None:
            return entry
        table = ctx.reference.get("watchlist")
        w = table.get(f"{self.watch_kind}:{code}") if table else None
        if w is not None and w.get("list") == "key_monitored" and (not w.get("until") or day <= w["until"]):
            return {"name": w.get("name") or code, "basis": "watch list"}
        return None

    def _chart(self, listed: bool) -> tuple[PeerShareCUSUM, float]:
        c = self.limits
        if listed:
            return PeerShareCUSUM(c.key_ratio, min_trials=c.min_prescriptions), c.key_threshold
        return PeerShareCUSUM(c.ratio, min_trials=c.min_prescriptions), c.threshold

    def judge(self, ctx: Context, chart: None, day: str, totals: dict[str, float], evidence: list[Source],
              now: float) -> list[Alert]:
        st = ctx.state
        kept_evidence = st.get("ev", {}).pop(day, {})
        if not st.get("ev"):
            st.pop("ev", None)
        dept_of, n_of, k_of = {}, {}, {}
        for name, value in totals.items():
            kind, a, b = name.split("\t")
            if kind == "n":
                dept_of[b], n_of[b] = a, int(value)
            elif kind == "k":
                k_of[(a, b)] = int(value)
        dept_n: dict[str, int] = {}
        dept_k: dict[tuple[str, str], int] = {}
        for doc, n in n_of.items():
            dept_n[dept_of[doc]] = dept_n.get(dept_of[doc], 0) + n
        for (doc, code), k in k_of.items():
            dept_k[(dept_of[doc], code)] = dept_k.get((dept_of[doc], code), 0) + k
        weeks = WeeklyTotals.load(st.get("weeks"))
        weeks.advance(date.fromisoformat(day).toordinal() // 7)
        charts = st.setdefault("charts", {})
        pairs = set(k_of) | {(doc, code) for doc, code in map(_pair, charts) if doc in n_of}
        learned: dict[str, float] = {}
        alerts = []
        for doc, code in sorted(pairs):
            # a day's voids (claims taken back) can leave fewer than nothing: nothing is judged then
            dept, n = dept_of[doc], max(0, n_of[doc])
            k = min(n, max(0, k_of.get((doc, code), 0)))
            x = {"n": n, "k": k, "peer_n": dept_n[dept] - n, "peer_k": dept_k.get((dept, code), 0) - k,
                 **weeks.baselines(doc, dept, code)}
            listed = self._listed(ctx, code, day)
            model, threshold = self._chart(listed is not None)
            episode = Episode(model, threshold).load(charts.get(f"{doc}\t{code}"))
            if episode.observe(x):
                alerts.append(self._alert(ctx, doc, dept, code, day, listed, x, totals, model, threshold,
                                          [Source(*s) for s in kept_evidence.get(f"{doc}\t{code}", ())], now))
            learn_day(learned, weeks, charts, doc, dept, code, model.learned(x), episode)
        for doc, n in n_of.items():
            learn_trials(learned, doc, dept_of[doc], n)
        weeks.add(learned)
        st["weeks"] = weeks.dump()
        return alerts

    def _alert(self, ctx: Context, doc: str, dept: str, code: str, day: str, listed: dict[str, str] | None,
               x: dict[str, Any], totals: dict[str, float], model: PeerShareCUSUM, threshold: float,
               evidence: list[Source], now: float) -> Alert:
        st, inst = ctx.state, ctx.key
        baseline, peer_baseline = model.baseline(x), model.peer_baseline(x)
        name = (listed or {}).get("name") or code  # the record's own drug name is free text: never in an alert
        amount = round(totals.get(f"a\t{doc}\t{code}", 0.0), 2)
        ddd = round(totals.get(f"d\t{doc}\t{code}", 0.0), 2)
        ratio = self.limits.key_ratio if listed else self.limits.ratio
        share = x["k"] / x["n"]
        peer_share = x["peer_k"] / x["peer_n"] if x["peer_n"] else None
        key_text = f" (key-monitored: {listed.get('basis', 'listed')})" if listed else ""
        peers = (f"the others' share today {100 * peer_share:.0f} %, usual {100 * peer_baseline:.0f} %"
                 if peer_share is not None else "no colleague prescribed that day")
        reason = (f"prescriber {doc} ({inst}/{dept}): {name}{key_text} on {x['k']} of {x['n']} prescriptions "
                  f"({100 * share:.0f} %) on {day}, expected {100 * model.expected:.0f} % from their own history "
                  f"({100 * baseline:.0f} %) and their department's ({peers}); amount {amount:,.0f} yuan"
                  f"{f', {ddd:g} DDD' if ddd else ''}; evidence of {ratio:g}× the odds {model.statistic:.1f} "
                  f"(threshold {threshold:g})")
        return Alert.build(
            detector=self.name, version=self.version, key=f"{code}@{day}", stream=self.stream,
            severity="medium" if listed else "low", tier="excess_usage", entity_kind="prescriber", entity_id=doc,
            institution_id=inst, region=st["ctx"]["region"], event_t=now, score=model.statistic / threshold,
            reason=reason,
            numbers={"day": day, "department": dept, "drug": code, "drug_name": name, "key_monitored": bool(listed),
                     "prescriptions": x["n"], "with_drug": x["k"], "share": round(share, 4),
                     "expected_share": round(model.expected, 4), "baseline_share": round(baseline, 4),
                     "peer_prescriptions": x["peer_n"], "peer_with_drug": x["peer_k"],
                     "peer_share": None if peer_share is None else round(peer_share, 4),
                     "peer_baseline_share": round(peer_baseline, 4), "amount": amount, "ddd": ddd,
                     "evidence": round(model.statistic, 2), "threshold": threshold, "ratio": ratio},
            evidence=evidence,
        )
