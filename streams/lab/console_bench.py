"""`zhijian console-bench`: how fast the workbench builds cases from alerts, and how fast its pages answer with
many cases in the store.

Two measurements, each beside a reference taken in the same run on the same machine:

* **cases built**: alert records (JSON bytes, as on ``zhijian.alerts``) decoded and filed into cases by the
  console's own path (:meth:`streams.workbench.console.Console.add_alert`), against decoding alone with orjson
  (what reading the topic costs at least);
* **pages**: the console served over HTTP on loopback (aiohttp, the same application ``zhijian console``
  runs) with that many cases, a signed-in analyst asking for the queue (whole, and filtered by stream and
  status, grade, grid, "my cases"), case pages, the page of a case of 10,000 alerts (its first page, and a later
  page of one rule and day), its audit report (XLSX), search by case number and by a record id, and institution
  pages: p50 / p95 / max per page, against the login page (a template and no data: what one request costs at
  least).

The alerts are generated from a seed: one to four per case within a day (the console's grouping rule makes
each group one case), detectors and streams in the region's proportions, a fifth of the institutions with
a risk grade, patients only as pseudonyms.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from connectors.kafka.broker import free_port
from streams.workbench.console import Console
from streams.workbench.store import Store
from streams.workbench.web import make_app

#: (detector, stream, entity kind, share of cases)
DETECTORS = [
    ("claim.duplicate_charge", "claim", "patient", 0.20), ("claim.over_standard", "claim", "institution", 0.10),
    ("claim.card_misuse", "claim", "institution", 0.05), ("claim.institution_profile", "claim", "institution", 0.05),
    ("prescription.over_supply", "prescription", "prescriber", 0.20),
    ("prescription.excess_usage", "prescription", "prescriber", 0.05),
    ("prescription.doctor_shopping", "prescription", "patient", 0.05),
    ("waste.weight_discrepancy", "waste", "carrier", 0.10), ("waste.storage_overdue", "waste", "institution", 0.05),
    ("coldchain.excursion", "telemetry", "device", 0.10), ("coldchain.sensor_silent", "telemetry", "device", 0.05),
]
DAY = 86400.0
T0 = 1788220800.0  # 2026-09-01T00:00:00Z


def generate_alerts(cases: int, seed: int = 1) -> list[bytes]:
    """Alert records for about ``cases`` cases, as bytes, in event-time order."""
    rng = random.Random(seed)
    weights = [d[3] for d in DETECTORS]
    institutions = [f"H{n:04d}" for n in range(max(10, cases // 200))]
    out: list[tuple[float, bytes]] = []
    for k in range(cases):
        detector, stream, kind, _ = rng.choices(DETECTORS, weights)[0]
        inst = rng.choice(institutions)
        region = f"31{rng.randrange(100):04d}"
        entity = inst if kind == "institution" else f"{kind[:2].upper()}-{k}"
        start = T0 + rng.uniform(0, 90) * DAY
        for n in range(rng.choice((1, 1, 2, 3, 4))):
            t = start + n * rng.uniform(0, DAY / 4)
            aid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/{k}/{n}"))
            alert = {"alert_id": aid, "detector": detector, "version": "1", "stream": stream,
                     "severity": "high", "tier": "violation", "entity": {"kind": kind, "id": entity},
                     "institution_id": inst, "region": region, "score": round(rng.uniform(1, 10), 3),
                     "event_time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t)),
                     "status": "open", "reason": f"{detector} on {entity}: {rng.randrange(2, 40)} over the limit",
                     "numbers": {"amount": round(rng.uniform(10, 5000), 2), "count": rng.randrange(1, 50)},
                     "evidence": [{"topic": f"zhijian.{stream}", "partition": rng.randrange(12),
                                   "offset": rng.randrange(10**7), "event_id": f"EV-{k}-{n}"}]}
            out.append((t, orjson.dumps(alert)))
    out.sort(key=lambda x: x[0])
    return [raw for _, raw in out]


BIG_CASE_ALERTS = 10_000


def big_case(seed: int = 1) -> list[bytes]:
    """One fridge's incident of 10,000 alerts over 30 days (excursions and breaches: one cold-chain case)."""
    rng = random.Random(seed)
    out = []
    for n in range(BIG_CASE_ALERTS):
        t = T0 + 30 * DAY * n / BIG_CASE_ALERTS
        detector = "coldchain.excursion" if n % 3 else "coldchain.breach"
        alert = {"alert_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/big/{n}")), "detector": detector,
                 "version": "1", "stream": "telemetry", "severity": "high", "tier": "safety",
                 "entity": {"kind": "device", "id": "FR-BIG"}, "institution_id": "CDC-BIG", "region": "310101",
                 "score": round(rng.uniform(1, 10), 3), "event_time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                                                                   time.gmtime(t)),
                 "status": "closed", "reason": f"fridge FR-BIG: {rng.uniform(8, 12):.1f} °C",
                 "numbers": {"kind": "heat", "peak_c": round(rng.uniform(8, 12), 1), "limit_c": 8.0,
                             "duration_minutes": rng.randrange(5, 90)},
                 "evidence": [{"topic": "zhijian.telemetry", "partition": 3, "offset": n, "event_id": f"BIG-{n}"}]}
        out.append(orjson.dumps(alert))
    return out


def scores_for(alerts: list[bytes], seed: int = 1) -> list[dict[str, Any]]:
    """A risk score record for a fifth of the institutions (the grades the queue orders by)."""
    rng = random.Random(seed)
    insts = sorted({orjson.loads(a)["institution_id"] for a in alerts[:20000]})
    out = []
    for inst in insts[::5]:
        score = rng.uniform(0, 9)
        grade = "red" if score >= 6 else "orange" if score >= 3 else "yellow" if score >= 1 else "blue"
        out.append({"institution_id": inst, "day": "2026-11-27", "score": round(score, 3), "grade": grade,
                    "rank": len(out) + 1, "of": len(insts[::5]), "peer_group": "hospital", "claims": 1000,
                    "beneficiaries": 400, "features": {"claims_per_patient": 2.5},
                    "z": {"claims_per_patient": round(score, 3)}, "top": ["claims_per_patient"]})
    return out


def _timed(n: int, fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


async def _pages(console: Any, requests: int, seed: int) -> dict[str, list[float]]:

    port = free_port()
    runner = web.AppRunner(make_app(console))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(seed)
    case_ids = list(console.book.cases)
    institutions = sorted({c.institution_id for c in console.book.cases.values()})
    grid = console.grid_of(next(iter(console.book.cases.values())))
    big = next(c for c in console.book.cases.values() if c.entity_id == "FR-BIG")
    some = console.book.cases[case_ids[len(case_ids) // 2]]
    pages = {
        "login page (reference)": lambda: "/login",
        "queue": lambda: "/",
        "queue: claims, open": lambda: "/?stream=claim&status=open",
        "queue: grade red": lambda: "/?grade=red",
        "queue: one grid": lambda: f"/?grid={grid}",
        "queue: my cases": lambda: "/?mine=1",
        "case page": lambda: f"/cases/{rng.choice(case_ids)}",
        f"case page: {big.alerts:,} alerts": lambda: f"/cases/{big.case_id}",
        f"case page: {big.alerts:,} alerts, one rule and day, page 2": lambda: (
            f"/cases/{big.case_id}?detector=coldchain.excursion&day=2026-09-15&page=2"),
        f"audit report (XLSX) of the {big.alerts:,}-alert case": lambda: f"/cases/{big.case_id}/report.xlsx",
        "search: a case number": lambda: f"/search?q={some.number}",
        "search: a record id": lambda: f"/search?q=EV-{rng.randrange(len(case_ids))}-0",
        "institution page": lambda: f"/institutions/{rng.choice(institutions)}",
    }
    times: dict[str, list[float]] = {}
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # an IP host
            async with http.post(base + "/login", data={"user": "bench", "password": "bench-password-123"},
                                 allow_redirects=False) as r:
                assert r.status == 303, f"sign-in failed ({r.status})"
            for name, path in pages.items():
                for i in range(requests + 2):
                    t = time.perf_counter()
                    async with http.get(base + path(), allow_redirects=False) as r:
                        await r.read()
                        if r.status != 200:
                            raise RuntimeError(f"{name}: HTTP {r.status}")
                    if i >= 2:  # the first two warm caches up
                        times.setdefault(name, []).append(time.perf_counter() - t)
    finally:
        await runner.cleanup()
    return times


def run_console_bench(args: argparse.Namespace) -> int:
    print(f"generating alerts for {args.cases:,} cases (seed {args.seed}) …", flush=True)
    alerts = generate_alerts(int(args.cases * 1.2), args.seed)  # an entity's incidents a week apart merge: ~1/6
    alerts += big_case(args.seed)
    scores = scores_for(alerts, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "console.db")
        store.add_user("bench", "analyst", "bench-password-123")
        decoded = _timed(len(alerts), lambda: [orjson.loads(a) for a in alerts])
        console = Console(store)
        for s in scores:
            console.add_score(s)
        built = _timed(len(alerts), lambda: [console.add_alert(orjson.loads(a)) for a in alerts])
        numbered = time.perf_counter()
        console.flush_numbers()  # the case numbers given, kept in the store (the console does it per batch read)
        numbered = time.perf_counter() - numbered
        cases = len(console.book.cases)
        gc.collect()
        gc.freeze()  # as the console does once it has caught up with the alert topic
        print(f"\n{len(alerts):,} alerts → {cases:,} cases\n")
        print("| step | alerts/s |\n|---|---|")
        print(f"| cases built (decode + file into cases) | {built:,.0f} |")
        print(f"| decode alone (orjson, reference) | {decoded:,.0f} |")
        print(f"\nkeeping {cases:,} new case numbers in the store: {numbered:.2f} s")
        times = asyncio.run(_pages(console, args.requests, args.seed))
    print(f"\npages with {cases:,} cases, {args.requests} requests each, over HTTP on loopback:\n")
    print("| page | p50 ms | p95 ms | max ms |\n|---|---|---|---|")
    for name, ts in times.items():
        ts = sorted(ts)
        p95 = ts[min(len(ts) - 1, int(0.95 * len(ts)))]
        print(f"| {name} | {statistics.median(ts) * 1000:.1f} | {p95 * 1000:.1f} | {ts[-1] * 1000:.1f} |")
    if args.json:
        Path(args.json).write_text(orjson.dumps({"alerts": len(alerts), "cases": cases, "built_per_s": built,
                                                 "decode_per_s": decoded,
                                                 "pages_ms": {k: sorted(v) for k, v in times.items()}},
                                                option=orjson.OPT_INDENT_2).decode())
    return 0
