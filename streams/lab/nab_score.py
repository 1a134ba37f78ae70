"""NAB scoring (Numenta Anomaly Benchmark) as NAB's own scorer computes it, row by row.

A series is a list of rows (timestamps); the labels are windows given by their first and last
row's timestamp. Every row has a *sweep score*, what a detection on that row would be worth:

* inside a window of ``width`` rows whose last row is ``right``: ``tp`` × σ(−(right − i + 1) / width)
  / σ(−1), where σ(y) = 2 / (1 + e^(5y)) − 1 (σ(y) = −1 for y > 3) — an early detection is worth
  almost ``tp``, one at the window's end about half of it;
* outside every window: ``fp`` × σ(|i − right| / (width − 1)) of the window that ended last — a
  detection just after a window costs little, one far after it the full ``fp`` — and the full
  ``fp`` before the first window.

The first min(⌊0.15 · rows⌋, 750) rows are the *probationary period*: nothing there is scored,
and a window lying entirely in it is neither found nor missed. Of the rows detected (the
detector's anomaly score at or above its threshold, or the rows of a rule's alarms), each window
counts its best detection (or ``−fn`` when it has none), and every detection outside the windows
adds its (negative) sweep score. A file's normalized score is 100 · (raw − null) / (perfect − null):
``null`` is the raw score of a detector that never detects, ``perfect`` ``tp`` × the number of
windows. Profiles are NAB's cost matrices.

>>> rows = [float(t) for t in range(100)]
>>> windows = [(40.0, 49.0)]                     # ten rows; rows 0–14 are probationary
>>> s = sweep_scores(rows, windows, PROFILES["standard"])
>>> round(s[40], 4), round(s[49], 4), round(s[30], 2), round(s[50], 4)
(1.0, 0.2482, -0.11, -0.0298)
>>> score_file(rows, [40], windows, "standard")["score"]       # detected on the window's first row
100.0
>>> score_file(rows, [], windows, "standard")["score"], score_file(rows, [45, 90], windows, "standard")["false_alarms"]
(0.0, 1)
>>> score_file(rows, [5], windows, "standard")["false_alarms"]  # in the probationary period: not judged
0
"""
from __future__ import annotations

import math
from typing import Iterable

#: NAB's profiles (config/profiles.json): the weight of a detection in a window, of one outside, of a miss.
PROFILES = {
    "standard": {"tp": 1.0, "fp": 0.11, "fn": 1.0},
    "reward_low_FP_rate": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
    "reward_low_FN_rate": {"tp": 1.0, "fp": 0.11, "fn": 2.0},
}
PROBATION_SHARE = 0.15
PROBATION_MAX_ROWS = 0.15 * 5000  # NAB caps the probationary period at 15 % of 5,000 rows


def sigma(y: float) -> float:
    """NAB's scaled sigmoid: 1 well before a window's end, 0 at it, −1 well after it."""
    return -1.0 if y > 3.0 else 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def probationary_rows(n: int) -> float:
    return min(math.floor(PROBATION_SHARE * n), PROBATION_MAX_ROWS)


def _window_rows(rows: list[float], windows: Iterable[tuple[float, float]]) -> list[tuple[int, int]]:
    index: dict[float, int] = {}
    for i, t in enumerate(rows):
        index.setdefault(t, i)  # a clock that stepped back repeats a time: its first row, as NAB takes it
    try:
        return sorted((index[a], index[b]) for a, b in windows)
    except KeyError as e:
        raise ValueError(f"a window limit {e.args[0]} is not a row of the series") from None


def sweep_scores(rows: list[float], windows: Iterable[tuple[float, float]], profile: dict[str, float]) -> list[float]:
    """What a detection on each row is worth (NAB's per-row S(t) column)."""
    spans = _window_rows(rows, windows)
    best = sigma(-1.0)
    out = []
    k = 0  # the next window
    last: tuple[int, int] | None = None  # the window that ended last
    for i in range(len(rows)):
        while k < len(spans) and spans[k][1] < i:
            last = spans[k]
            k += 1
        if k < len(spans) and spans[k][0] <= i:
            left, right = spans[k]
            out.append(sigma(-(right - i + 1) / (right - left + 1)) * profile["tp"] / best)
        elif last is None:
            out.append(-1.0 * profile["fp"])
        else:
            left, right = last
            out.append(sigma(abs(right - i) / (right - left)) * profile["fp"])
    return out


def score_file(rows: list[float], detected: Iterable[int], windows: list[tuple[float, float]],
               profile_name: str = "standard") -> dict[str, float]:
    """Score detections (row indices) on one file: raw, null, perfect and the normalized score."""
    profile = PROFILES[profile_name]
    spans = _window_rows(rows, windows)
    sweep = sweep_scores(rows, windows, profile)
    start = probationary_rows(len(rows))
    judged = [w for w in spans if w[1] >= start]  # a window inside the probationary period is not scored
    best: dict[tuple[int, int], float] = {}
    fp_score, false_alarms = 0.0, 0
    for i in sorted(set(detected)):
        if i < start:
            continue
        window = next((w for w in judged if w[0] <= i <= w[1]), None)
        if window is None:
            fp_score += sweep[i]
            false_alarms += 1
        else:
            best[window] = max(best.get(window, -profile["fn"]), sweep[i])
    raw = fp_score + sum(best.get(w, -profile["fn"]) for w in judged)
    null = -profile["fn"] * len(judged)
    perfect = profile["tp"] * len(spans)
    score = 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0
    return {"score": round(score, 1), "raw": raw, "null": null, "perfect": perfect, "windows": len(spans),
            "detected": len(best), "false_alarms": false_alarms}


def rows_of(rows: list[float], alarms: Iterable[float]) -> list[int]:
    """The row of each alarm time: the first row with that time, else the first row after it."""
    first: dict[float, int] = {}
    for i, t in enumerate(rows):
        first.setdefault(t, i)
    out = []
    for t in alarms:
        i = first.get(t)
        if i is None:
            i = next((j for j, u in enumerate(rows) if u >= t), None)
        if i is not None:
            out.append(i)
    return out
