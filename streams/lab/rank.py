"""Ranking institutions: the risk score (streams.workbench.risk) against naive rankings, on labelled institutions.

The positives are the institutions the simulator makes fraudulent for a whole horizon —
``fraudulent_institution`` (a quarter of every kind and size) and ``upcoding_profile`` — and the
rankings compared are the score, the plain claim count (volume, the baseline to beat), and the count
and rate of alerts (what ranking by rule hits gives). Each is reported as ROC-AUC and precision at
k (k = the number of positives, and 5).

``zhijian rank --seeds 1 2 3`` runs the simulator's claims through the claims detectors in this
process (no broker: a ranking needs the claims and their alerts, not the transport) and prints one
table per seed and their mean; ``zhijian evaluate`` prints the same table for its own run.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from connectors.errors import ZhijianError
from models.contracts.alert import Source
from models.contracts.pseudonym import Pseudonymizer
from models.contracts.records import validate
from streams.lab.processes import ensure_run_key
from streams.workbench.risk.ranking import precision_at_k, roc_auc
from streams.lab.simulator import REGION_CONFIG, RegionSimulator, SimulationConfig
from streams.settings import load_settings
from streams.workbench.risk.learned import LearnedScore, features
from streams.workbench.risk.ledger import InstitutionLedger
from streams.workbench.risk.score import RiskSettings, score_institutions
from streams.worker.plan import build_detectors
from streams.worker.reference import ReferenceTables

#: What the fraudulent_institution scenario names as its "detector": the ranking, not an alert.
RISK_SCORE = "institution.risk"
#: The scenarios whose institutions are fraudulent as a whole (the ranking's positives).
INSTITUTION_SCENARIOS = ("fraudulent_institution", "upcoding_profile")


def positives(truth: list[dict[str, Any]]) -> set[str]:
    return {x["entity"]["id"] for x in truth if x["scenario"] in INSTITUTION_SCENARIOS}


def compare_rankings(ledger: Any, alerts: list[dict[str, Any]], fraud: set[str], as_of: str,
                     peer_groups: dict[str, str] | None = None, beds: dict[str, int] | None = None) -> dict[str, Any]:
    """ROC-AUC and precision@k of the score and of the naive rankings, over the institutions scored."""

    scored = score_institutions(ledger, as_of, RiskSettings(peer_groups=peer_groups or {}, beds=beds or {}))
    volume = {s.institution_id: float(s.claims) for s in scored}
    hits = Counter(a.get("institution_id") for a in alerts if a.get("stream") == "claim")
    rankings = {
        "money at risk": {s.institution_id: s.money_at_risk for s in scored},
        "risk score": {s.institution_id: s.score for s in scored},
        "claim volume (baseline)": volume,
        "money paid (baseline)": {s.institution_id: s.money for s in scored},
        "claims-rule alerts": {i: float(hits.get(i, 0)) for i in volume},
        "claims-rule alerts per claim": {i: hits.get(i, 0) / volume[i] for i in volume},
    }
    fraud = fraud & set(volume)
    k = len(fraud)
    table = {name: {"roc_auc": roc_auc(r, fraud), f"precision_at_{k}": precision_at_k(r, fraud, k),
                    "precision_at_5": precision_at_k(r, fraud, 5)} for name, r in rankings.items()}
    return {"as_of": as_of, "institutions": len(volume), "fraudulent": sorted(fraud), "k": k, "rankings": table,
            "scores": [s.to_dict() for s in scored], "rank_scores": rankings}


def with_findings(result: dict[str, Any], share: float, seed: int) -> dict[str, Any] | None:
    """Audit findings for a seeded random ``share`` of the institutions (their truth: fraud or clean), the learned
    score trained on them, and every ranking judged on the *other* institutions only; None when the labelled
    share holds no institution of one class."""
    rng = random.Random(f"findings-{seed}")
    ids = sorted(result["rank_scores"]["risk score"])
    labelled = set(rng.sample(ids, max(2, round(share * len(ids)))))
    fraud = set(result["fraudulent"])
    labels = {i: i in fraud for i in labelled}
    if len(set(labels.values())) < 2:
        return None
    rows = {r["institution_id"]: features(r) for r in result["scores"]}
    learned = LearnedScore.fit(rows, labels).predict(rows)
    rest = [i for i in ids if i not in labelled]
    positives = fraud & set(rest)
    k = len(positives)
    rankings = {"learned score": learned, **result["rank_scores"]}
    table = {name: {"roc_auc": roc_auc({i: r[i] for i in rest}, positives),
                    f"precision_at_{k}": precision_at_k({i: r[i] for i in rest}, positives, k),
                    "precision_at_5": precision_at_k({i: r[i] for i in rest}, positives, 5)}
             for name, r in rankings.items()}
    return {"labelled": len(labelled), "labelled_fraudulent": sum(labels.values()), "judged": len(rest),
            "fraudulent": sorted(positives), "k": k, "rankings": table}


def _table(result: dict[str, Any]) -> str:
    k = result["k"]
    lines = [f"| ranking | ROC-AUC | precision@{k} | precision@5 |", "|---|---|---|---|"]
    for name, m in result["rankings"].items():
        cells = [m["roc_auc"], m[f"precision_at_{k}"], m["precision_at_5"]]
        lines.append(f"| {name} | " + " | ".join("–" if c is None else f"{c:.2f}" for c in cells) + " |")
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    k = result["k"]
    lines = [f"institutions scored: {result['institutions']}, fraudulent: {k} ({', '.join(result['fraudulent'])})",
             "", f"| ranking | ROC-AUC | precision@{k} | precision@5 |", "|---|---|---|---|"]
    for name, m in result["rankings"].items():
        cells = [m["roc_auc"], m[f"precision_at_{k}"], m["precision_at_5"]]
        lines.append(f"| {name} | " + " | ".join("–" if c is None else f"{c:.2f}" for c in cells) + " |")
    lines += ["", "| rank | institution | score | grade | peer group | claims | strongest rates |", "|---|---|---|---|---|---|---|"]
    fraud = set(result["fraudulent"])
    for s in result["scores"][:10]:
        mark = " ★" if s["institution_id"] in fraud else ""
        lines.append(f"| {s['rank']} | {s['institution_id']}{mark} | {s['score']:.1f} | {s['grade']} | {s['peer_group']} | "
                     f"{s['claims']:,} | {', '.join(s['top'])} |")
    lines.append("\n★ labelled fraudulent")
    return "\n".join(lines)


def run_seed(seed: int, days: float, scale: float) -> dict[str, Any]:
    """One simulated region's claims through the claims detectors in this process; the rankings compared."""

    sim = RegionSimulator(SimulationConfig(seed=seed, days=days, scale=scale))
    settings = load_settings([str(REGION_CONFIG)], environ={})
    pseudonymize = Pseudonymizer.from_env()
    tables = ReferenceTables(pseudonymize)
    for key, record in sim.references()["beneficiary"]:
        tables.apply("beneficiary", key.encode(), orjson.dumps(record))
    runtime = build_detectors(settings, tables)["claim"][0]
    ledger = InstitutionLedger()
    alerts: dict[str, dict[str, Any]] = {}
    for offset, (stream, key, event) in enumerate(sim.until(sim.t0 + days * 86400)):
        if stream != "claim":
            continue
        event = validate(stream, event)
        event["patient"] = pseudonymize(event.pop("patient_id"))
        ledger.learn_claim(event)
        for alert in runtime.process(event, Source("zhijian.claims", 0, offset, key)):
            alerts.setdefault(alert.alert_id, orjson.loads(alert.to_json()))
    for alert in alerts.values():
        ledger.learn_alert(alert)
    as_of = max(d for days_ in ledger.days.values() for d in days_)
    return compare_rankings(ledger, list(alerts.values()), positives(sim.truth), as_of, *registry(sim.region))


def registry(region: Any) -> tuple[dict[str, str], dict[str, int]]:
    """What a regulator's registry says of the simulated institutions: their kind and approved beds."""
    return ({i.id: i.kind for i in region.institutions}, {i.id: i.beds for i in region.institutions if i.beds})


def run_rank(args: argparse.Namespace) -> int:
    if args.days <= 0 or args.scale <= 0 or not args.seeds:
        raise ZhijianError("--days and --scale must be positive and --seeds name at least one seed")
    print(f"rank: {ensure_run_key()}", file=sys.stderr)
    results = []
    for seed in args.seeds:
        started = time.monotonic()
        result = run_seed(seed, args.days, args.scale)
        results.append(result)
        print(f"\n## seed {seed}, {args.days:g} days, scale {args.scale:g} ({time.monotonic() - started:.0f} s)\n")
        print(markdown(result))
        found = with_findings(result, args.labelled, seed) if args.labelled else None
        result["with_findings"] = found
        if found:
            print(f"\nwith audit findings for {found['labelled']} institutions ({found['labelled_fraudulent']} "
                  f"fraudulent), judged on the other {found['judged']} ({found['k']} fraudulent):\n")
            print(_table(found))
    names = list(results[0]["rankings"])
    print(f"\n## mean over {len(results)} seed(s)\n\n| ranking | ROC-AUC | precision@k (k = fraudulent) | precision@5 |\n|---|---|---|---|")
    for name in names:
        aucs = [r["rankings"][name]["roc_auc"] for r in results if r["rankings"][name]["roc_auc"] is not None]
        pk = [r["rankings"][name][f"precision_at_{r['k']}"] for r in results]
        p5 = [r["rankings"][name]["precision_at_5"] for r in results]
        print(f"| {name} | {statistics.mean(aucs):.2f} | {statistics.mean(pk):.2f} | {statistics.mean(p5):.2f} |")
    found = [r["with_findings"] for r in results if r.get("with_findings")]
    if found:
        print(f"\n## mean over {len(found)} seed(s), findings for {args.labelled:.0%} of the institutions, judged on "
              f"the rest\n\n| ranking | ROC-AUC | precision@k | precision@5 |\n|---|---|---|---|")
        for name in found[0]["rankings"]:
            aucs = [f["rankings"][name]["roc_auc"] for f in found if f["rankings"][name]["roc_auc"] is not None]
            pk = [f["rankings"][name][f"precision_at_{f['k']}"] for f in found if f["k"]]
            p5 = [f["rankings"][name]["precision_at_5"] for f in found]
            print(f"| {name} | {statistics.mean(aucs):.2f} | {statistics.mean(pk):.2f} | {statistics.mean(p5):.2f} |")
    if args.json:
        for r in results:
            r.pop("rank_scores", None)
        Path(args.json).write_text(json.dumps({"seeds": args.seeds, "days": args.days, "scale": args.scale,
                                               "results": results}, indent=2))
    return 0
