"""`zhijian triage`: does the priority learned from verdicts put the cases an analyst confirms first?

The simulated region runs with its scenarios and its **benign look-alikes** (a chronic patient's month of
tablets before a journey, an elderly patient's seven indicated drugs, a defrost heater passing +8 °C —
alerts an analyst justifies) through every detector in this process (no broker: the question is about the
queue, not the transport); the alerts are filed into cases as the workbench files them. A simulated analyst
then works the rules' queue from the top, one case at a time, and gives each the verdict its ground truth says:
confirmed (violation/fraud) when one of its alerts matches a planted incident, justified when it matches a
look-alike, false positive otherwise. After each verdict the model learns (:class:`streams.workbench.priority.CasePriority`).

Printed: the precision of the top 20 open cases (the share an analyst would confirm) before any verdict and
after 50 and 200, for the learned order and for the rules' own order (strongest alert first), both ranking
the same open cases — the analyst works the rules' queue, so that neither order is judged on what the other
left behind — per seed and their mean.
"""
from __future__ import annotations

import argparse
import statistics
from datetime import datetime
from typing import Any

import orjson

from models.contracts.alert import Source
from models.contracts.pseudonym import Pseudonymizer
from models.contracts.records import validate
from streams.lab.processes import ensure_run_key
from streams.lab.simulator import REGION_CONFIG, RegionSimulator, SimulationConfig
from streams.settings import load_settings
from streams.workbench.cases import CaseBook
from streams.workbench.priority import CasePriority, case_features
from streams.worker.plan import build_detectors
from streams.worker.reference import ReferenceTables

CHECKPOINTS = (0, 50, 200)
TOP = 20
GRACE_S = 86400.0


def region_cases(seed: int, days: float, scale: float, scenario_rate: float) -> tuple[list[Any], dict[str, str],
                                                                                      dict[str, dict[str, Any]]]:
    """(cases, label per case id, strongest alert per case id) of one simulated region with look-alikes."""

    ensure_run_key()
    pseudonymize = Pseudonymizer.from_env()
    sim = RegionSimulator(SimulationConfig(seed=seed, days=days, scale=scale, scenario_rate=scenario_rate,
                                           look_alikes=True))
    tables = ReferenceTables(pseudonymize)
    for table, records in sim.references().items():
        for key, record in records:
            tables.apply(table, key.encode(), orjson.dumps(record))
    runtimes = {stream: rts[0] for stream, rts in build_detectors(load_settings([str(REGION_CONFIG)], environ={}),
                                                                    tables).items()}
    records: list[dict[str, Any]] = []
    for offset, (stream, key, event) in enumerate(sim.until(sim.t0 + days * 86400)):
        event = validate(stream, event)
        if stream in ("prescription", "claim"):
            event["patient"] = pseudonymize(event.pop("patient_id"))
        for alert in runtimes[stream].process(event, Source(f"zhijian.{stream}", 0, offset, key)):
            records.append(orjson.loads(alert.to_json()))
    book, latest = CaseBook(), {}
    for r in records:
        book.add(r)
        latest[r["alert_id"]] = r
    incidents: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for x in sim.truth:
        kind, ident = x["entity"]["kind"], x["entity"]["id"]
        incidents.setdefault((kind, pseudonymize(ident) if kind == "patient" else ident), []).append(x)
    labels, strongest = {}, {}
    for case in book.cases.values():
        found = set()
        for aid in case.alert_ids:
            a = latest[aid]
            t = a["event_t"] if "event_t" in a else _t(a["event_time"])
            for x in incidents.get((a["entity"]["kind"], a["entity"]["id"]), ()):
                if a["detector"] in x["detectors"] and x["start_t"] <= t <= x["end_t"] + GRACE_S:
                    found.add("justified" if x["detail"].get("benign") else "confirmed")
        labels[case.case_id] = "confirmed" if "confirmed" in found else "justified" if found else "false_positive"
        strongest[case.case_id] = latest.get(case.strongest or "", {})
    return list(book.cases.values()), labels, strongest


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def work_the_queue(cases: list[Any], labels: dict[str, str], strongest: dict[str, dict[str, Any]]
                   ) -> dict[str, dict[int, float]]:
    """The analyst closes the top case of the rules' own queue (strongest alert first) after each look, and the
    model learns each verdict; at each checkpoint, both orders are measured on the same open cases: the share of
    the top ones the analyst would confirm."""

    model = CasePriority()
    x = {c.case_id: case_features(c, strongest[c.case_id]) for c in cases}
    rules = {c.case_id: (-c.strongest_score, c.first_seen, c.case_id) for c in cases}
    open_ = sorted((c.case_id for c in cases), key=rules.__getitem__)
    out: dict[str, dict[int, float]] = {"learned": {}, "rules": {}}

    def precision(ranked: list[str]) -> float:
        top = ranked[:TOP]
        return sum(labels[cid] == "confirmed" for cid in top) / len(top)

    for verdicts in range(max(CHECKPOINTS) + 1):
        if not open_:
            break
        if verdicts in CHECKPOINTS:
            out["rules"][verdicts] = precision(open_)
            learned = sorted(open_, key=lambda cid: (-model.score_one(x[cid]), rules[cid])) if model.ready else open_
            out["learned"][verdicts] = precision(learned)
        cid = open_.pop(0)
        model.learn_one(x[cid], labels[cid] == "confirmed")
    return out


def run_triage(args: argparse.Namespace) -> int:
    rows = []
    for seed in args.seeds:
        cases, labels, strongest = region_cases(seed, args.days, args.scale, args.scenario_rate)
        counts = {k: sum(v == k for v in labels.values()) for k in ("confirmed", "justified", "false_positive")}
        got = work_the_queue(cases, labels, strongest)
        rows.append((seed, len(cases), counts, got["learned"], got["rules"]))
        print(f"seed {seed}: {len(cases)} cases — {counts['confirmed']} to confirm, {counts['justified']} benign "
              f"look-alikes, {counts['false_positive']} false positives", flush=True)
    print(f"\nprecision of the top {TOP} open cases (the analyst works the rules' queue from the top; both orders "
          f"ranked on the same open cases):\n")
    head = " | ".join(f"after {n}" if n else "before any verdict" for n in CHECKPOINTS)
    print(f"| seed | order | {head} |\n|---|---|" + "---|" * len(CHECKPOINTS))
    for seed, _, _, learned, rules in rows:
        for name, got in (("learned from verdicts", learned), ("rules' own (strongest first)", rules)):
            print(f"| {seed} | {name} | " + " | ".join(f"{got[n]:.2f}" if n in got else "–" for n in CHECKPOINTS) + " |")
    if len(rows) > 1:
        for name, i in (("learned from verdicts", 3), ("rules' own (strongest first)", 4)):
            means = [statistics.mean(r[i][n] for r in rows if n in r[i]) if any(n in r[i] for r in rows) else None
                     for n in CHECKPOINTS]
            print(f"| mean | {name} | " + " | ".join("–" if m is None else f"{m:.2f}" for m in means) + " |")
    return 0
