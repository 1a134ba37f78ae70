"""The simulation written to files: one JSON-lines file per stream (what `zhijian replay` reads)
and ``truth.jsonl`` beside them (what nothing but the evaluator reads)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

from connectors.errors import ZhijianError
from connectors.simulator.simulator import RegionSimulator


def write_simulation(sim: RegionSimulator, out: Path, days: float) -> Counter[str]:
    try:
        out.mkdir(parents=True, exist_ok=True)
        files = {s: open(out / f"{s}.jsonl", "wb") for s in ("prescription", "claim", "waste", "telemetry")}
    except OSError as e:
        raise ZhijianError(f"cannot write to {out}: {e.strerror}; choose another --out directory") from None
    counts: Counter[str] = Counter()
    try:
        for stream, _, event in sim.until(sim.t0 + days * 86400):
            files[stream].write(orjson.dumps(event) + b"\n")
            counts[stream] += 1
        with open(out / "truth.jsonl", "wb") as f:
            for incident in sim.truth:
                f.write(orjson.dumps(incident) + b"\n")
    finally:
        for f in files.values():
            f.close()
    return counts
