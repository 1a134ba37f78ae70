"""`zhijian bench --entities N`: what N distinct entities cost the detectors' state, and that it is let go.

In process, no broker: every stream's detectors (all in one runtime, as one worker holding every
partition would run them) get N events, each naming new entities of every kind the stream carries
(patient, prescriber, doctor, institution, device, manifest, carrier) — the worst case, where no key
is ever reused. Printed per stream: the keys held, the resident memory they added (RSS, after a
garbage collection) per entity, and the JSON bytes per key a checkpoint would write. Then the event
time jumps past the longest retention and the keys left are counted: state expires by event time,
so memory is bounded by the entities active within the retention, not by all ever seen.
"""
from __future__ import annotations

import copy
import gc
import multiprocessing
import time
from typing import Any

import orjson

from models.contracts.alert import Source, iso
from models.contracts.records import load_schema
from models.engine.runtime import SWEEP_EVERY_S
from streams.settings import load_settings
from streams.worker import heap
from streams.worker.plan import build_detectors

STREAMS = ("prescription", "claim", "waste", "telemetry")
DAY_S = 86400.0


def rss_mib() -> float:
    """Resident memory of this process now."""
    return heap.resident_bytes() / 2**20


def _event(stream: str, base: dict[str, Any], i: int, t: float) -> dict[str, Any]:
    e = copy.deepcopy(base)
    e["event_time"], e["_t"] = iso(t), t
    tag = f"{i:07d}"
    if stream in ("prescription", "claim"):
        e.pop("patient_id")
        e["patient"] = "P" + tag
        e["institution_id"] = "H" + tag
    if stream == "prescription":
        e.update(prescription_id="RX" + tag, prescriber_id="D" + tag)
    elif stream == "claim":
        e.update(claim_id="CL" + tag, doctor_id="D" + tag, settlement_site="H" + tag)
        e["items"][0]["service_date"] = e["event_time"][:10]
    elif stream == "waste":
        e.update(manifest_id="MF" + tag, institution_id="H" + tag, carrier_id="CR" + tag, event_type="generated")
    else:
        e.update(device_id="FR" + tag, facility_id="CDC" + tag, temperature_c=5.0)
    return e


def measure(stream: str, n: int, settings: Any) -> dict[str, Any]:
    [runtime] = build_detectors(settings)[stream]
    base = load_schema(stream)["examples"][0]
    t0 = time.time() - 40 * DAY_S
    gc.collect()
    before = rss_mib()
    alerts = 0
    started = time.monotonic()
    for i in range(n):
        e = _event(stream, base, i, t0 + i * DAY_S / n)  # n entities, all active within one day
        alerts += len(runtime.process(e, Source(stream, 0, i, str(i))))
        if i % 10_000 == 9_999:
            runtime.task(0).changes()  # a checkpoint, as the worker takes at every offset commit
    runtime.task(0).changes()
    seconds = time.monotonic() - started
    gc.collect()
    held = len(runtime)
    added = rss_mib() - before
    task = runtime.task(0)
    sample = task.snapshot()["entries"]
    json_bytes = sum(len(orjson.dumps(v)) for v in sample) / max(1, len(sample))
    retention = max(d.retention_s for d in task.detectors)
    # events past the longest retention: the timers due fire, then the sweeps let go of every idle key
    late = t0 + DAY_S + retention + 2 * DAY_S
    for k, t in enumerate((late, late + SWEEP_EVERY_S + 3 * 3600)):
        e = _event(stream, base, n + k, t)
        alerts += len(runtime.process(e, Source(stream, 0, n + k, str(n + k))))
    late_tags = (f"{n:07d}", f"{n + 1:07d}")  # the late events' own keys are not counted
    left = sum(not any(tag in e[1] for tag in late_tags) for e in task.snapshot()["entries"])
    return {"stream": stream, "entities": n, "keys": held, "rss_added_mib": round(added, 1),
            "bytes_per_entity": round(added * 2**20 / n), "json_bytes_per_key": round(json_bytes),
            "events_per_s": round(n / seconds), "retention_days": round(retention / DAY_S),
            "keys_after_retention": left, "alerts": alerts}


def run_entities(n: int, configs: list[str] | None = None, streams: tuple[str, ...] = STREAMS) -> list[dict[str, Any]]:
    settings = load_settings(configs or [])
    rows = []
    print(f"{'stream':<13} {'entities':>9} {'keys':>9} {'RSS added':>10} {'B/entity':>9} {'JSON B/key':>10} "
          f"{'ev/s':>7} {'retention':>9} {'keys after':>10}")
    for stream in streams:
        with multiprocessing.get_context("fork").Pool(1) as pool:  # a fresh heap per stream: RSS deltas honest
            r = pool.apply(measure, (stream, n, settings))
        rows.append(r)
        print(f"{stream:<13} {n:>9,} {r['keys']:>9,} {r['rss_added_mib']:>7.1f} MiB {r['bytes_per_entity']:>9,} "
              f"{r['json_bytes_per_key']:>10,} {r['events_per_s']:>7,} {r['retention_days']:>7} d "
              f"{r['keys_after_retention']:>10,}")
    return rows
