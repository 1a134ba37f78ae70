"""``zhijian group-bench``: the 结伴就医 rule (:mod:`models.rules.claims.group_visits`) at a province's scale.

A province of ``--beneficiaries`` insured people (a million by default) settles its outpatient and pharmacy claims
for ``--days`` days at institutions of every size — tertiary hospitals with a thousand and more settlements a day
down to clinics with a dozen, about forty a day per doctor — and recruited groups (3–5 people, 3–4 shared days 4–12 days apart) are planted at
institutions of each kind. The claims go through one runtime holding the rule, in event-time order, as the
institution's re-keyed partition would see them; beside it, in the same run, the reference: the same claims
through a runtime whose only detector does nothing (what the rule itself costs is the difference). It prints
claims per second for both, the rule's state (JSON bytes, the Python heap it holds), how many days of one-off
co-visits its pair tables (one per doctor) hold at each kind of institution (``max_pairs`` bounds the memory; a
group must come back within that reach), and the planted groups found per kind.

Claims are generated here, not by the region simulator: a million beneficiaries' month is too much to simulate
stream by stream, and only the fields the rule reads are needed.
"""
from __future__ import annotations

import argparse
import json
import random
import time
import tracemalloc
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from models.contracts.alert import Source
from models.engine.detector import KeyedDetector
from models.engine.runtime import Runtime
from models.rules.claims.group_visits import Days, GroupVisitsConfig, GroupVisitsDetector, day_count, first_day

TZ = timezone(timedelta(hours=8))
START = datetime(2026, 10, 1, tzinfo=TZ)
#: kind → (institutions per million beneficiaries, outpatient and pharmacy settlements a day each)
KINDS = {"tertiary": (8, 2500), "secondary": (25, 500), "community": (120, 80), "private_clinic": (250, 25),
         "pharmacy": (400, 30)}


def doctors(per_day: int) -> int:
    """Doctors (or pharmacists) of a site with ``per_day`` settlements: about forty each a day."""
    return max(1, per_day // 40)


class _Nothing(KeyedDetector):
    """The reference: keyed like the rule, does nothing."""

    name, version, stream, key, key_field, Limits = "bench.nothing", "1", "claim", "institution", "institution_id", dict

    def process(self, ctx, event, source):
        return []


def province(beneficiaries: int, days: int, seed: int) -> tuple[list[tuple[float, dict[str, Any]]], list[dict]]:
    """The claims (event time, event) in time order and the planted groups."""
    rng = random.Random(f"group-bench-{seed}")
    scale = beneficiaries / 1_000_000
    institutions = [(f"{k[:2].upper()}{n:04d}", k, per_day) for k, (count, per_day) in KINDS.items()
                    for n in range(max(1, round(count * scale)))]
    claims: list[tuple[float, dict[str, Any]]] = []
    n = 0

    def claim(t: float, inst: str, patient: str, kind: str, doctor: int) -> None:
        nonlocal n
        n += 1
        local = datetime.fromtimestamp(t, TZ)
        claims.append((t, {"claim_id": f"B{n:09d}", "claim_type": "pharmacy" if kind == "pharmacy" else "outpatient",
                           "institution_id": inst, "patient": f"P{patient}", "region": "310101",
                           "doctor_id": f"{inst}-D{doctor:03d}",
                           "event_time": local.isoformat(timespec="seconds"),
                           "total_amount": round(rng.uniform(20, 400), 2), "_t": t}))

    for d in range(days):
        day0 = (START + timedelta(days=d)).timestamp()
        for inst, kind, per_day in institutions:
            for _ in range(max(0, round(rng.gauss(per_day, per_day ** 0.5)))):
                claim(day0 + rng.uniform(8, 17) * 3600, inst, f"{rng.randrange(beneficiaries):08d}", kind,
                      rng.randrange(doctors(per_day)))
    groups = []
    by_kind = defaultdict(list)
    for inst, kind, _ in institutions:
        by_kind[kind].append(inst)
    for kind, insts in by_kind.items():
        for g in range(6):
            inst = rng.choice(insts)
            members = [f"G{kind[:2]}{g}-{m}" for m in range(rng.randint(3, 5))]
            first = rng.uniform(0, max(1, days - 30))
            visit_days = [first]
            for _ in range(rng.randint(3, 4) - 1):
                visit_days.append(visit_days[-1] + rng.uniform(4, 12))
            visit_days = [v for v in visit_days if v < days]
            doctor = rng.randrange(doctors(KINDS[kind][1]))
            for vd in visit_days:
                t = (START + timedelta(days=int(vd))).timestamp() + rng.uniform(9, 11) * 3600
                for m in members:
                    claim(t, inst, m, kind, doctor)
                    t += rng.uniform(60, 180)
            groups.append({"kind": kind, "institution": inst, "members": len(members), "days": len(visit_days),
                           "id": f"{inst}/{inst}-D{doctor:03d}@"
                                 f"{(START + timedelta(days=int(visit_days[0]))).date().isoformat()}"})
    claims.sort(key=lambda x: (x[0], x[1]["claim_id"]))
    return claims, groups


def _run(detector: KeyedDetector, claims: list[tuple[float, dict[str, Any]]]) -> tuple[float, Runtime, list]:
    rt = Runtime([detector])
    alerts = []
    t0 = time.perf_counter()
    for offset, (_, event) in enumerate(claims):
        alerts += rt.process(event, Source("zhijian.claims-by-institution", 0, offset, event["claim_id"]))
    return time.perf_counter() - t0, rt, alerts


def _reach_days(pairs: dict[str, Days], today: int) -> float | None:
    once = [first_day(v) for v in pairs.values() if day_count(v) == 1]
    return None if not once else today - min(once)


def run_group_bench(args: argparse.Namespace) -> int:
    claims, groups = province(args.beneficiaries, args.days, args.seed)
    n = len(claims)
    print(f"{args.beneficiaries:,} beneficiaries, {args.days} days: {n:,} outpatient and pharmacy claims "
          f"({n / args.days:,.0f} a day), {len(groups)} planted groups", flush=True)
    ref_s, _, _ = _run(_Nothing(), claims)
    config = GroupVisitsConfig(max_pairs=args.max_pairs)
    rule_s, rt, alerts = _run(GroupVisitsDetector(config), claims)
    print("timed; again under tracemalloc for the memory …", flush=True)
    tracemalloc.start()
    _run(GroupVisitsDetector(config), claims)
    heap = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    states = {key: state for _, key, state, _, _ in rt.snapshot()["entries"]}
    sizes = {k: len(orjson.dumps(s)) for k, s in states.items()}
    today = (START + timedelta(days=args.days - 1)).date().toordinal()
    kinds = {}
    for k, s in states.items():
        kind = next(kd for kd in KINDS if k.startswith(kd[:2].upper()))
        row = kinds.setdefault(kind, {"tables": 0, "state_bytes": [], "pairs": [], "reach_days": []})
        row["tables"] += 1
        row["state_bytes"].append(sizes[k])
        row["pairs"].append(len(s.get("pairs", {})))
        reach = _reach_days(s.get("pairs", {}), today)
        if reach is not None:
            row["reach_days"].append(reach)
    found = {a.entity_id for a in alerts}
    result = {
        "beneficiaries": args.beneficiaries, "days": args.days, "claims": n, "max_pairs": args.max_pairs,
        "reference_claims_per_s": round(n / ref_s), "rule_claims_per_s": round(n / rule_s),
        "rule_us_per_claim": round((rule_s - ref_s) / n * 1e6, 1),
        "state_json_mib": round(sum(sizes.values()) / 2**20, 1), "heap_peak_mib": round(heap[1] / 2**20, 1),
        "largest_state_kib": round(max(sizes.values(), default=0) / 1024, 1),
        "kinds": {k: {"tables": v["tables"], "pairs_max": max(v["pairs"]),
                      "state_kib_max": round(max(v["state_bytes"]) / 1024, 1),
                      "reach_days_min": min(v["reach_days"], default=None)} for k, v in kinds.items()},
        "groups": {kind: {"planted": sum(1 for g in groups if g["kind"] == kind and g["days"] >= 3),
                          "found": sum(1 for g in groups if g["kind"] == kind and g["days"] >= 3
                                       and g["id"] in found)} for kind in KINDS},
        "other_alerts": len({a.entity_id for a in alerts} - {g["id"] for g in groups}),
    }
    print(f"\n| | claims/s | µs per claim |\n|---|---|---|\n"
          f"| reference (a runtime with a detector that does nothing) | {result['reference_claims_per_s']:,} | "
          f"{ref_s / n * 1e6:.1f} |\n| claim.group_visits | {result['rule_claims_per_s']:,} | {rule_s / n * 1e6:.1f} |")
    print(f"\nstate: {result['state_json_mib']} MiB as JSON (largest table {result['largest_state_kib']} KiB), "
          f"Python heap peak {result['heap_peak_mib']} MiB (max_pairs {args.max_pairs:,} per doctor)\n")
    print("| kind | tables (doctors) | pairs (max) | state KiB (max) | one-off co-visits held (days, min) | groups planted "
          "| found |")
    print("|---|---|---|---|---|---|---|")
    for kind in KINDS:
        k, g = result["kinds"].get(kind, {}), result["groups"][kind]
        reach = k.get("reach_days_min")
        print(f"| {kind} | {k.get('tables', 0):,} | {k.get('pairs_max', 0):,} | {k.get('state_kib_max', 0)} | "
              f"{'all' if reach is None else f'{reach:g}'} | {g['planted']} | {g['found']} |")
    print(f"\nalerts on no planted group: {result['other_alerts']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0

