"""NAB-style scoring of alarms on labelled anomaly windows (Numenta Anomaly Benchmark, standard profile).

For each labelled window the first alarm inside it earns ``A_TP`` × σ(y), where y ∈ [−1, 0] is
the alarm's position relative to the window's end (−1 at its start), σ(y) = 2 / (1 + e^(5y)) − 1
— early detection scores more; later alarms in the same window count for nothing. A window
without an alarm costs ``A_FN``. An alarm outside every window costs ``A_FP`` — in full before
the first window or far after one, less just after a window ends (σ of its distance from that
window's end, in window lengths). Alarms in the probationary period (the first 15 % of the
series) are ignored. The raw score is normalized so that a detector that never alarms scores 0
and one that alarms at the start of every window and nowhere else scores 100.

>>> windows = [(200.0, 300.0), (500.0, 600.0)]
>>> nab_score([], windows, start=0, end=1000)["score"]
0.0
>>> nab_score([200.0, 500.0], windows, start=0, end=1000)["score"]
100.0
>>> early, late = nab_score([210.0], windows, 0, 1000)["score"], nab_score([290.0], windows, 0, 1000)["score"]
>>> early > late > 0
True
>>> nab_score([210.0, 900.0], windows, 0, 1000)["score"] < early   # a false alarm costs
True
>>> nab_score([100.0], windows, 0, 1000)["false_alarms"]             # the probationary 15 % is not judged
0
"""
from __future__ import annotations

import math
from typing import Iterable

A_TP, A_FP, A_FN = 1.0, -0.11, -1.0  # NAB standard profile
PROBATION = 0.15


def sigma(y: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def nab_score(alarms: Iterable[float], windows: list[tuple[float, float]], start: float, end: float) -> dict:
    """Score alarm times against windows over a series running from ``start`` to ``end``."""
    windows = sorted(windows)
    probation_end = start + PROBATION * (end - start)
    hit: dict[int, float] = {}
    raw = 0.0
    false_alarms = 0
    for t in sorted(alarms):
        if t < probation_end:
            continue
        inside = next((i for i, (a, b) in enumerate(windows) if a <= t <= b), None)
        if inside is not None:
            if inside not in hit:
                a, b = windows[inside]
                hit[inside] = t
                raw += A_TP * sigma((t - b) / (b - a))
            continue
        false_alarms += 1
        before = [(a, b) for a, b in windows if b < t]
        if before:
            a, b = before[-1]
            raw += A_FP * -sigma((t - b) / (b - a))  # σ < 0 after a window: the full cost far from it
        else:
            raw += A_FP
    raw += A_FN * (len(windows) - len(hit))
    null = A_FN * len(windows)
    perfect = A_TP * sigma(-1.0) * len(windows)
    score = 100.0 * (raw - null) / (perfect - null) if windows else 0.0
    return {"score": round(score, 1), "raw": round(raw, 4), "windows": len(windows), "detected": len(hit),
            "false_alarms": false_alarms}
