"""`zhijian nab`: the temperature-dynamics detector on NAB's real temperature series, NAB-scored.

Each series is fed to :class:`models.coldchain.dynamics.DynamicsDetector` as one device's
readings, in time order, exactly as the worker would hand them over; the alarms are scored
on NAB's labelled windows with :func:`models.nab_score.nab_score`. Beside it, in the same run, a
reference: a windowed Gaussian (the last 2,000 readings' mean and deviation, alarm past 4 σ,
at most one alarm a day), the simplest detector on NAB's scoreboard.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from connectors.errors import ZhijianError

SERIES = ("realKnownCause/machine_temperature_system_failure.csv",
          "realKnownCause/ambient_temperature_system_failure.csv")
DEFAULT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "nab"
#: NAB's published scoreboard, standard profile, over its whole 58-series corpus (for scale only)
SCOREBOARD = {"ARTime": 74.9, "Numenta HTM": 70.5, "CAD OSE": 69.9, "KNN CAD": 58.0, "Random Cut Forest": 51.7,
              "Windowed Gaussian": 39.6, "random": 11.0}


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.strip()[:19]).replace(tzinfo=timezone.utc).timestamp()


def load_series(root: Path, name: str) -> list[tuple[float, float]]:
    path = root / "data" / name
    try:
        with open(path, newline="") as f:
            return [(_ts(row["timestamp"]), float(row["value"])) for row in csv.DictReader(f)]
    except OSError as e:
        raise ZhijianError(f"cannot read {path} ({e.strerror}); pass the NAB folder with --data") from None
    except (KeyError, ValueError) as e:
        raise ZhijianError(f"{path} is not a NAB series (timestamp,value): {e}") from None


def dynamics_alarms(series: list[tuple[float, float]], device: str) -> list[float]:
    from models.alert import Source
    from models.coldchain.dynamics import DynamicsDetector
    from models.runtime import Runtime

    d = Runtime([DynamicsDetector()])
    alarms = []
    for i, (t, value) in enumerate(series):
        e = {"device_id": device, "device_kind": "fridge", "facility_id": "NAB", "temperature_c": value, "_t": t}
        for a in d.process(e, Source("nab", 0, i, f"{device}@{t}")):
            alarms.append(a.event_t)
    return alarms


def windowed_gaussian_alarms(series: list[tuple[float, float]], size: int = 2000, z: float = 4.0) -> list[float]:
    window: deque[float] = deque()
    total = total_sq = 0.0
    alarms: list[float] = []
    for t, value in series:
        if len(window) >= 100:
            mean = total / len(window)
            sd = math.sqrt(max(total_sq / len(window) - mean * mean, 0.0)) or 1e-9
            if abs(value - mean) / sd > z and (not alarms or t - alarms[-1] > 86400):
                alarms.append(t)
        window.append(value)
        total += value
        total_sq += value * value
        if len(window) > size:
            old = window.popleft()
            total -= old
            total_sq -= old * old
    return alarms


def run_nab(args: argparse.Namespace) -> int:
    from models.nab_score import nab_score

    root = Path(args.data) if args.data else DEFAULT_DIR
    labels = root / "labels" / "combined_windows.json"
    try:
        windows_by_file = json.loads(labels.read_text())
    except OSError:
        raise ZhijianError(f"NAB labels not found at {labels}; pass the NAB folder (with data/ and labels/) "
                           "with --data") from None
    results: dict[str, Any] = {}
    print(f"{'series':42}{'detector':26}{'score':>7}{'windows':>9}{'found':>7}{'false':>7}")
    for name in SERIES:
        series = load_series(root, name)
        windows = [(_ts(a), _ts(b)) for a, b in windows_by_file[name]]
        start, end = series[0][0], series[-1][0]
        for label, alarms in (("coldchain.abnormal_dynamics", dynamics_alarms(series, Path(name).stem)),
                              ("windowed Gaussian (ref.)", windowed_gaussian_alarms(series))):
            r = nab_score(alarms, windows, start, end)
            results.setdefault(name, {})[label] = r
            print(f"{Path(name).stem:42}{label:26}{r['score']:>7.1f}{r['windows']:>9}{r['detected']:>7}"
                  f"{r['false_alarms']:>7}")
    mean = {label: round(statistics.fmean(results[n][label]["score"] for n in SERIES), 1)
            for label in results[SERIES[0]]}
    print("\nmean: " + ", ".join(f"{k} {v}" for k, v in mean.items()))
    print("NAB scoreboard (whole corpus, for scale): " + ", ".join(f"{k} {v}" for k, v in SCOREBOARD.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"series": results, "mean": mean, "scoreboard": SCOREBOARD}, indent=2))
    return 0
