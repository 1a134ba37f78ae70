"""`zhijian nab`: the temperature-dynamics detector on NAB's real temperature series, NAB-scored.

Each series is fed to :class:`models.rules.coldchain.dynamics.DynamicsDetector` as one device's
readings, in time order, exactly as the worker would hand them over; the alarms are scored
on NAB's labelled windows with :mod:`streams.lab.nab_score` — NAB's own scoring, in its three profiles.
Beside it, in the same run: a reference of ours, a windowed Gaussian (the last 2,000 readings'
mean and deviation, alarm past 4 σ, at most one alarm a day), and NAB's published detectors
(their result files under ``results/``, each at its published threshold per profile).
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
from models.contracts.alert import Source
from models.engine.runtime import Runtime
from models.rules.coldchain.dynamics import DynamicsDetector
from streams.lab import artificial
from streams.lab.nab_score import PROFILES, rows_of, score_file

SERIES = ("realKnownCause/machine_temperature_system_failure.csv",
          "realKnownCause/ambient_temperature_system_failure.csv")
DEFAULT_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "nab"  # ../shared beside the checkout
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


def published_detections(root: Path, detector: str, name: str, threshold: float) -> list[int]:
    """The rows a NAB detector's published result file marks at or above its published threshold."""
    folder, file = name.split("/")
    path = root / "results" / detector / folder / f"{detector}_{file}"
    with open(path, newline="") as f:
        return [i for i, row in enumerate(csv.DictReader(f)) if float(row["anomaly_score"]) >= threshold]


def run_nab(args: argparse.Namespace) -> int:
    root = Path(args.data) if args.data else DEFAULT_DIR
    labels = root / "labels" / "combined_windows.json"
    try:
        windows_by_file = json.loads(labels.read_text())
        thresholds = json.loads((root / "config" / "thresholds.json").read_text())
    except OSError:
        raise ZhijianError(f"NAB labels or thresholds not found under {root}; pass the NAB folder (with data/, "
                           "labels/, config/ and results/) with --data") from None
    published = sorted(d.name for d in (root / "results").iterdir() if d.is_dir() and d.name in thresholds)
    results: dict[str, Any] = {}
    profiles = list(PROFILES)
    print(f"{'series':36}{'detector':30}{'standard':>9}{'low FP':>8}{'low FN':>8}{'windows':>9}{'found':>7}{'false':>7}")
    for name in SERIES:
        series = load_series(root, name)
        rows = [t for t, _ in series]
        windows = [(_ts(a), _ts(b)) for a, b in windows_by_file[name]]
        candidates = {
            "coldchain.abnormal_dynamics": rows_of(rows, dynamics_alarms(series, Path(name).stem)),
            "windowed Gaussian (ours, ref.)": rows_of(rows, windowed_gaussian_alarms(series)),
        }
        for detector in published:
            candidates[f"{detector} (published)"] = None
        for label, detected in candidates.items():
            scores = {}
            for profile in profiles:
                if detected is None:  # a published detector: its own threshold per profile
                    detector = label.split(" ")[0]
                    hits = published_detections(root, detector, name, thresholds[detector][profile]["threshold"])
                else:
                    hits = detected
                scores[profile] = score_file(rows, hits, windows, profile)
            results.setdefault(name, {})[label] = {p: {k: v for k, v in r.items() if k != "raw"} | {"raw": round(r["raw"], 4)}
                                                   for p, r in scores.items()}
            st = scores["standard"]
            print(f"{Path(name).stem:36}{label:30}{st['score']:>9.1f}{scores['reward_low_FP_rate']['score']:>8.1f}"
                  f"{scores['reward_low_FN_rate']['score']:>8.1f}{st['windows']:>9}{st['detected']:>7}"
                  f"{st['false_alarms']:>7}")
    labels_seen = list(results[SERIES[0]])
    mean = {label: {p: round(statistics.fmean(results[n][label][p]["score"] for n in SERIES), 1) for p in profiles}
            for label in labels_seen}
    print("\nmean of the two files, standard profile: "
          + ", ".join(f"{k} {v['standard']}" for k, v in mean.items()))
    print("NAB scoreboard (whole 58-file corpus, standard, for scale): "
          + ", ".join(f"{k} {v}" for k, v in SCOREBOARD.items()))
    artificial = score_artificial()
    if args.json:
        Path(args.json).write_text(json.dumps({"series": results, "mean": mean, "scoreboard": SCOREBOARD,
                                               "artificial": artificial}, indent=2))
    return 0


def score_artificial(seeds: tuple[int, ...] = (0, 1, 2)) -> dict[str, Any]:
    """Our own artificial series (:mod:`streams.lab.artificial`), NAB-scored, standard profile: per series the
    mean score over ``seeds`` and the alarms outside the windows, for the dynamics model and the windowed
    Gaussian reference; printed as a table."""
    out: dict[str, Any] = {}
    print(f"\nartificial series (streams/lab/artificial.py, seeds {', '.join(map(str, seeds))}), standard profile: "
          "score (false alarms)")
    print(f"{'series':26}{'kind':9}{'abnormal_dynamics':>20}{'windowed Gaussian':>20}")
    for name in artificial.SERIES:
        row: dict[str, Any] = {}
        for label, alarms_of in (("coldchain.abnormal_dynamics", lambda s: dynamics_alarms(s, "ART")),
                                 ("windowed Gaussian (ours, ref.)", windowed_gaussian_alarms)):
            scores, false = [], 0
            for seed in seeds:
                s = artificial.series(name, seed)
                r = score_file(s.rows, rows_of(s.rows, alarms_of(list(zip(s.rows, s.values)))), s.windows, "standard")
                scores.append(r["score"])
                false += r["false_alarms"]
            row[label] = {"score": round(statistics.fmean(scores), 1), "false_alarms": false}
        kind = artificial.SERIES[name][0]
        out[name] = {"kind": kind, **row}
        a, g = row["coldchain.abnormal_dynamics"], row["windowed Gaussian (ours, ref.)"]
        print(f"{name:26}{kind:9}{a['score']:>13.1f} ({a['false_alarms']:>2}){g['score']:>13.1f} ({g['false_alarms']:>2})")
    return out
