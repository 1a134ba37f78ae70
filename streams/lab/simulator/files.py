"""The simulation written to files: one JSON-lines file per stream and per reference table (what
`zhijian replay` reads) and ``truth.jsonl`` beside them (what nothing but the evaluator reads)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from connectors.errors import ZhijianError
from connectors.kafka.topics import KEY_FIELD
from streams.lab.simulator.simulator import RegionSimulator


def write_simulation(sim: RegionSimulator, out: Path, days: float) -> Counter[str]:
    try:
        out.mkdir(parents=True, exist_ok=True)
        files = {s: open(out / f"{s}.jsonl", "wb") for s in KEY_FIELD}
    except OSError as e:
        raise ZhijianError(f"cannot write to {out}: {e.strerror}; choose another --out directory") from None
    counts: Counter[str] = Counter()
    for table, records in sim.references().items():  # the reference data, replayed first
        with open(out / f"{table}.jsonl", "wb") as f:
            f.write(b"".join(orjson.dumps(value) + b"\n" for _, value in records))
        counts[table] = len(records)
    try:
        for stream, _, event in sim.until(sim.t0 + days * 86400):
            files[stream].write(orjson.dumps(event) + b"\n")
            counts[stream] += 1
    finally:
        for f in files.values():
            f.close()
    write_truth(out / "truth.jsonl", sim.truth)
    return counts


def write_truth(path: Path, truth: list[dict[str, Any]]) -> None:
    """The ground truth as JSON lines, one incident each."""
    with open(path, "wb") as f:
        for incident in truth:
            f.write(orjson.dumps(incident) + b"\n")
