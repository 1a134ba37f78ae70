"""Excess usage at department level 科室超常预警: a hospital department whose prescribers all write more of a drug.

``prescription.drug_usage`` judges each prescriber against their own history and excuses a rise their whole
department shares — an influenza season, a new guideline. A department that pushes a drug together (带金销售 arranged
for the department, a 科室 target) is excused there too. This chart judges the department instead: per department
code across the region (re-keyed by department, so the same department of every institution is judged together),
each institution's department day is its outpatient, emergency and long-term prescriptions and, for each drug, how
many carry it. A :class:`~models.rules.anomaly.peer_share.PeerShareCUSUM` per institution and drug adds up the
evidence that the department's share rose (its odds ``ratio``-fold) beyond its own baseline (the weeks before the
last, faded over about a month) *and* beyond what the same department at the other institutions shows that day: a
season the region shares is excused.

A rise one prescriber drives is that prescriber's chart's (``prescription.drug_usage``), not the department's: the
day is judged **without the prescriber who wrote the drug most that day** — what is left must still have risen, so
the alert says the rise is shared. A department with fewer than ``min_prescribers`` prescribers writing that day is
not judged, nor one with fewer than ``min_prescriptions`` prescriptions in its baseline weeks. Antimicrobials
(``exclude_atc_prefixes``, J01) are judged per institution and month by ``claim.antimicrobial_stewardship`` and per
prescriber by ``prescription.excess_usage``; key-monitored drugs (``key_monitored`` and the workbench's watch list
``key_monitored``, as for ``prescription.drug_usage``) get the stricter ``key_ratio`` and ``key_threshold``. One
alert per episode and department–drug, re-armed when the evidence is back at zero; its evidence is prescriptions
of the day it was raised, one per prescriber (the day's first, and more
once the chart is building).

>>> import random
>>> from datetime import datetime
>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> rng = random.Random(5)
>>> rt = Runtime([DepartmentUsageDetector()])
>>> n = [0]
>>> def day(d, push=0.0, season=0.0):
...     out = []
...     for inst in ("H1", "H2", "H3"):
...         for doc in ("D1", "D2", "D3", "D4"):
...             for i in range(30):
...                 items = [{"drug_code": "D-IBU200", "atc_code": "M01AE01", "amount": 2.4}]
...                 if rng.random() < 0.08 + season + (push if inst == "H2" else 0.0):
...                     items.append({"drug_code": "D-NAC200", "atc_code": "R05CB01", "amount": 13.5, "ddd_count": 6})
...                 n[0] += 1
...                 e = {"prescription_id": f"RX{n[0]}", "institution_id": inst, "department": "IM",
...                      "prescriber_id": f"{inst}-{doc}", "region": "310104", "visit_type": "outpatient",
...                      "items": items, "event_time": f"2026-10-{d:02d}T{9 + i // 6:02d}:{i % 6 * 9:02d}:00+08:00"}
...                 e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
...                 out += rt.process(e, Source("zhijian.prescriptions", 0, n[0], e["prescription_id"]))
...     return out
>>> [a for d in range(1, 15) for a in day(d)]
[]
>>> [a for d in range(15, 22) for a in day(d, season=0.2)]     # every hospital's internal medicine: a season
[]
>>> alerts = [a for d in range(22, 29) for a in day(d, push=0.15)]     # H2's internal medicine, all four of them
>>> [(a.entity_kind, a.entity_id, a.numbers["drug"], a.numbers["day"]) for a in alerts]
[('department', 'H2/IM', 'D-NAC200', '2026-10-26')]
>>> print(alerts[0].reason)
department IM of H2: D-NAC200 on 29 of 120 prescriptions (24 %) on 2026-10-26; without its prescriber who wrote it most that day (H2-D1, 10 of 30), 19 of 90 (21 %) against 12 % expected from its own history (12 %) and the same department at 2 other institutions (today 10 %, usual 12 %); amount 392 yuan, 174 DDD; evidence of 2.5× the odds 15.1 (threshold 15)
>>> len({s.event_id for s in alerts[0].evidence}), alerts[0].numbers["prescribers"]
(4, 4)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context
from models.rules.anomaly.cusum import Episode
from models.rules.anomaly.peer_share import PeerShareCUSUM, WeeklyTotals
from models.rules.prescription.drug_usage import DrugUsageDetector, learn_day, learn_trials

EVIDENCE_PER_DAY = 5  # prescriptions kept as evidence per institution, drug and day (one per prescriber)
WATCHED_FROM = 1.0  # a chart's evidence from which its day's prescriptions are kept (key-monitored drugs: always)
ALL = "*"  # the one peer group of a key: every institution's department of that code


@dataclass(frozen=True)
class DepartmentUsageLimits:
    """Configuration ``[prescription.department_usage]``."""

    ratio: float = 2.5  # the rise of the odds the chart is tuned to find, for any drug
    threshold: float = 15.0  # evidence (log-likelihood ratio) that raises the alert
    key_ratio: float = 2.0  # the same for a key-monitored drug (stricter)
    key_threshold: float = 8.0
    #: a day weighs as at most this many prescriptions: a department's are not independent draws (the day's mix of
    #: its prescribers and patients), and a chart fed hundreds a day would take any small difference for evidence
    day_trials: int = 100
    min_prescriptions: int = 300  # a department's prescriptions in the baseline weeks before it is judged
    min_prescribers: int = 3  # prescribers writing in the department that day (the top one is left out)
    #: drug code → {"name", "basis"}: the region's key-monitored list 重点监控药品目录 (its codes are the region's)
    key_monitored: dict[str, dict[str, str]] = field(default_factory=dict)
    exclude_atc_prefixes: list[str] = field(default_factory=lambda: ["J01"])  # antimicrobials: stewardship's


class DepartmentUsageDetector(DrugUsageDetector):
    name = "prescription.department_usage"
    version = "1"
    stream = "prescription"
    Limits = DepartmentUsageLimits  # its configuration section [prescription.department_usage]
    key = "department"
    key_field = "department"
    fields = ("institution_id", "department", "prescriber_id", "region", "visit_type", "event_time", "items")
    max_evidence = 0  # evidence is kept per institution and drug (counted)

    @classmethod
    def _conformance_params(cls) -> dict[str, Any]:
        return {"days": 21, "own_scenarios": True, "scale": 0.6}  # hospitals sharing departments: peers

    def key_of(self, event: dict[str, Any]) -> str | None:
        return None if event["visit_type"] == "inpatient" else event["department"]

    def context(self, event: dict[str, Any]) -> dict[str, Any]:
        return {}

    def values(self, event: dict[str, Any]) -> dict[str, float] | None:
        unit = f"{event['institution_id']}\t{event['prescriber_id']}"
        out = {f"n\t{unit}": 1.0}
        for code, (amount, ddd) in self._drugs(event).items():
            out[f"k\t{unit}\t{code}"] = 1.0
            out[f"a\t{event['institution_id']}\t{code}"] = amount
            if ddd:
                out[f"d\t{event['institution_id']}\t{code}"] = ddd
        return out

    def counted(self, ctx: Context, day: str, event: dict[str, Any], source: Source) -> None:
        st, inst, doc = ctx.state, event["institution_id"], event["prescriber_id"]
        charts = st.get("charts", {})
        for code in self._drugs(event):
            ev = st.setdefault("ev", {}).setdefault(day, {}).setdefault(f"{inst}\t{code}", [[], []])
            if ev[0]:  # the first prescription of the day is always kept: an alert has evidence however fast it came
                if len(ev[0]) >= EVIDENCE_PER_DAY or doc in ev[1]:
                    continue
                kept = charts.get(f"{inst}\t{code}")
                if self._listed(ctx, code, day) is None and (kept is None or kept[0] < WATCHED_FROM):
                    continue
            ev[0].append(list(source))  # then one per prescriber while the chart is building
            ev[1].append(doc)
        regions = st.setdefault("regions", {})
        if inst not in regions:
            regions[inst] = event.get("region") or "unknown"

    def judge(self, ctx: Context, chart: None, day: str, totals: dict[str, float], evidence: list[Source],
              now: float) -> list[Alert]:
        st, c = ctx.state, self.limits
        kept_evidence = st.get("ev", {}).pop(day, {})
        if not st.get("ev"):
            st.pop("ev", None)
        n_of: dict[str, dict[str, int]] = {}  # institution → prescriber → prescriptions
        k_of: dict[tuple[str, str], dict[str, int]] = {}  # (institution, drug) → prescriber → with the drug
        for name, value in totals.items():
            part = name.split("\t")
            if part[0] == "n":
                n_of.setdefault(part[1], {})[part[2]] = int(value)
            elif part[0] == "k":
                k_of.setdefault((part[1], part[3]), {})[part[2]] = int(value)
        whole_n = {inst: sum(docs.values()) for inst, docs in n_of.items()}
        whole_k = {pair: sum(docs.values()) for pair, docs in k_of.items()}
        all_n = sum(whole_n.values())
        all_k: dict[str, int] = {}
        for (inst, code), k in whole_k.items():
            all_k[code] = all_k.get(code, 0) + k
        weeks = WeeklyTotals.load(st.get("weeks"))
        weeks.advance(date.fromisoformat(day).toordinal() // 7)
        charts = st.setdefault("charts", {})
        pairs = set(k_of) | {tuple(p.split("\t")) for p in charts if p.split("\t")[0] in n_of}
        learned: dict[str, float] = {}
        alerts = []
        for inst, code in sorted(pairs):
            docs, by_doc = n_of[inst], k_of.get((inst, code), {})
            top = max(sorted(by_doc), key=lambda d: by_doc[d]) if by_doc else None
            n, k = whole_n[inst], whole_k.get((inst, code), 0)
            chart_name = f"{inst}\t{code}"
            listed = self._listed(ctx, code, day)
            model, threshold = self._chart(listed is not None)
            episode = Episode(model, threshold).load(charts.get(chart_name))
            if len(docs) >= c.min_prescribers:
                x = {"n": n - docs.get(top, 0), "k": k - by_doc.get(top, 0), "peer_n": all_n - n,
                     "peer_k": all_k.get(code, 0) - k, **weeks.baselines(inst, ALL, code)}
                if x["n"] > c.day_trials:  # weighed as day_trials prescriptions with the same share
                    x["weight"] = c.day_trials / x["n"]
                if episode.observe(x):
                    alerts.append(self._department_alert(
                        ctx, inst, code, day, listed, x, (top, by_doc.get(top, 0), docs.get(top, 0)), (n, k, len(docs)),
                        totals, model, threshold, [Source(*s) for s in kept_evidence.get(chart_name, ([],))[0]], now))
                count = k if model.statistic < model.learn_below else n * model.expected
            else:
                count = k  # not judged today: learned as seen
            learn_day(learned, weeks, charts, inst, ALL, code, count, episode)
        for inst, n in whole_n.items():
            learn_trials(learned, inst, ALL, n)
        weeks.add(learned)
        st["weeks"] = weeks.dump()
        return alerts

    def _department_alert(self, ctx: Context, inst: str, code: str, day: str, listed: dict[str, str] | None,
                          x: dict[str, Any], top: tuple[str | None, int, int], whole: tuple[int, int, int],
                          totals: dict[str, float], model: PeerShareCUSUM, threshold: float, evidence: list[Source],
                          now: float) -> Alert:
        dept, st_regions = ctx.key, ctx.state.get("regions", {})
        top_doc, top_k, top_n = top
        n, k, prescribers = whole
        baseline, peer_baseline = model.baseline(x), model.peer_baseline(x)
        name = (listed or {}).get("name") or code  # the record's own drug name is free text: never in an alert
        amount = round(totals.get(f"a\t{inst}\t{code}", 0.0), 2)
        ddd = round(totals.get(f"d\t{inst}\t{code}", 0.0), 2)
        ratio = self.limits.key_ratio if listed else self.limits.ratio
        share, rest = k / n, x["k"] / x["n"]
        peer_share = x["peer_k"] / x["peer_n"] if x["peer_n"] else None
        others = len({p.split("\t")[1] for p in totals if p.startswith("n\t")}) - 1
        key_text = f" (key-monitored: {listed.get('basis', 'listed')})" if listed else ""
        peers = (f"the same department at {others} other institution{'s' if others != 1 else ''} (today "
                 f"{100 * peer_share:.0f} %, usual {100 * peer_baseline:.0f} %)" if peer_share is not None
                 else "no other institution's department prescribed that day")
        reason = (f"department {dept} of {inst}: {name}{key_text} on {k} of {n} prescriptions ({100 * share:.0f} %) "
                  f"on {day}; without its prescriber who wrote it most that day ({top_doc}, {top_k} of {top_n}), "
                  f"{x['k']} of {x['n']} ({100 * rest:.0f} %) against {100 * model.expected:.0f} % expected from its "
                  f"own history ({100 * baseline:.0f} %) and {peers}; amount {amount:,.0f} yuan"
                  f"{f', {ddd:g} DDD' if ddd else ''}; evidence of {ratio:g}× the odds {model.statistic:.1f} "
                  f"(threshold {threshold:g})")
        return Alert.build(
            detector=self.name, version=self.version, key=f"{code}@{day}", stream=self.stream,
            severity="medium" if listed else "low", tier="excess_usage", entity_kind="department",
            entity_id=f"{inst}/{dept}", institution_id=inst, region=st_regions.get(inst, "unknown"),
            event_t=now, score=model.statistic / threshold, reason=reason,
            numbers={"day": day, "department": dept, "drug": code, "drug_name": name, "key_monitored": bool(listed),
                     "prescriptions": n, "with_drug": k, "share": round(share, 4), "prescribers": prescribers,
                     "top_prescriber": top_doc, "top_prescriber_with_drug": top_k,
                     "judged_prescriptions": x["n"], "judged_with_drug": x["k"], "judged_share": round(rest, 4),
                     "expected_share": round(model.expected, 4), "baseline_share": round(baseline, 4),
                     "peer_institutions": others, "peer_prescriptions": x["peer_n"], "peer_with_drug": x["peer_k"],
                     "peer_share": None if peer_share is None else round(peer_share, 4),
                     "peer_baseline_share": round(peer_baseline, 4), "amount": amount, "ddd": ddd,
                     "evidence": round(model.statistic, 2), "threshold": threshold, "ratio": ratio},
            evidence=evidence,
        )
