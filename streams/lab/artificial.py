"""Artificial series of the kinds anomaly benchmarks use (NAB's "artificial" family), written here, with known
anomaly windows: a daily pattern with and without noise, a square wave, a flat line, noise, a day whose peak jumps
up or down or does not come, a flattened middle, spikes of rising density.

Each series is 14 days of a reading every 5 minutes (4,032 rows, NAB's length); the anomaly starts on a
seeded day late enough to leave the detector a week to learn (spike density: from day 6), and its window is
NAB's: 10 % of the file's rows centred on the anomaly's start. Values are in °C-like units around a fridge's
range or a store room's, so the floors of a cold-chain detector (0.1 °C) mean what they mean on a real device:
the daily pattern is an unconditioned store room's (18 °C at night, 26 °C through the working day), the others a
fridge's (2–8 °C).

>>> s = series("daily_jumpsup", seed=1)
>>> len(s.rows), s.windows == [(s.rows[s.start - 201], s.rows[s.start + 201])], s.kind
(4032, True, 'anomaly')
>>> [n for n in SERIES if SERIES[n][0] == "normal"]
['daily_no_noise', 'daily_small_noise', 'daily_smooth', 'square_wave', 'flatline', 'noisy', 'daily_defrost']
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable

STEP_S = 300.0
DAYS = 14
ROWS = int(DAYS * 86400 / STEP_S)
T0 = 1396310400.0  # 2014-04-01T00:00:00Z, where NAB's artificial series start


@dataclass
class Series:
    name: str
    kind: str  # "normal" (no anomaly) or "anomaly"
    rows: list[float]  # timestamps
    values: list[float]
    start: int  # the anomaly's first row (−1: none)
    windows: list[tuple[float, float]]


def _daily(h: float) -> float:
    """A working-day rhythm: low at night, a plateau from 08:00 to 18:00 with one-hour ramps (0 … 1)."""
    if 7 <= h < 8:
        return h - 7
    if 8 <= h < 18:
        return 1.0
    if 18 <= h < 19:
        return 19 - h
    return 0.0


Shape = Callable[[float, float, bool, random.Random], float]  # (hour of day, day index, anomalous day, rng) → value


def _base(h: float) -> float:
    return 18.0 + 8.0 * _daily(h)


SERIES: dict[str, tuple[str, Shape]] = {
    "daily_no_noise": ("normal", lambda h, d, a, rng: _base(h)),
    "daily_small_noise": ("normal", lambda h, d, a, rng: _base(h) + rng.gauss(0, 0.5)),
    "daily_smooth": ("normal", lambda h, d, a, rng: 22.0 - 4.0 * math.cos(2 * math.pi * (h - 3) / 24)),
    "square_wave": ("normal", lambda h, d, a, rng: 4.0 + (2.0 if (h % 12) < 6 else 0.0)),
    "flatline": ("normal", lambda h, d, a, rng: 5.0),
    "noisy": ("normal", lambda h, d, a, rng: 5.0 + rng.gauss(0, 0.6)),
    "daily_defrost": ("normal", lambda h, d, a, rng: 4.0 + (3.0 if h % 8 < 0.34 else 0.0) + rng.gauss(0, 0.1)),
    "daily_jumpsup": ("anomaly", lambda h, d, a, rng: 18.0 + (12.0 if a else 8.0) * _daily(h) + rng.gauss(0, 0.3)),
    "daily_jumpsdown": ("anomaly", lambda h, d, a, rng: 18.0 + (4.0 if a else 8.0) * _daily(h) + rng.gauss(0, 0.3)),
    "daily_nojump": ("anomaly", lambda h, d, a, rng: 18.0 + (0.0 if a and 8 <= h < 18 else 8.0 * _daily(h))
                     + rng.gauss(0, 0.3)),
    "daily_flatmiddle": ("anomaly", lambda h, d, a, rng: (22.0 if a else _base(h)) + rng.gauss(0, 0.3)),
    "increase_spike_density": ("anomaly", lambda h, d, a, rng: 5.0 + rng.gauss(0, 0.1)
                               + (4.0 if rng.random() < (0.15 if a else 0.004) else 0.0)),
    "level_shift_up": ("anomaly", lambda h, d, a, rng: 5.0 + rng.gauss(0, 0.2) + (1.0 if a else 0.0)),
}
#: how long an anomaly lasts (rows), from its start; a level shift stays
LASTS = {"increase_spike_density": 288, "level_shift_up": ROWS}


def series(name: str, seed: int = 0) -> Series:
    """One series of :data:`SERIES`, its anomaly on a day chosen by ``seed``."""
    kind, shape = SERIES[name]
    rng = random.Random(f"{name}/{seed}")
    start = -1
    if kind == "anomaly":
        first_day = 6 if name == "increase_spike_density" else 8
        start = int((first_day + rng.randrange(3)) * 86400 / STEP_S + (rng.randrange(24) if name == "level_shift_up" else 0) * 12)
        if name not in LASTS:
            start = int(start // 288 * 288)  # a whole day
    lasts = LASTS.get(name, 288)
    rows, values = [], []
    for i in range(ROWS):
        t = T0 + i * STEP_S
        hour = (t % 86400) / 3600
        anomalous = start >= 0 and start <= i < start + lasts
        rows.append(t)
        values.append(round(shape(hour, i // 288, anomalous, rng), 3))
    windows = []
    if start >= 0:
        half = int(0.1 * ROWS) // 2
        windows = [(rows[max(start - half, 0)], rows[min(start + half, ROWS - 1)])]
    return Series(name, kind, rows, values, start, windows)


def resampled(s: Series, every_s: float, gaps: list[tuple[float, float]] = ()) -> Series:
    """The same series read every ``every_s`` seconds (a multiple of 5 minutes), without the readings in ``gaps``."""
    step = max(1, int(every_s // STEP_S))
    keep = [i for i in range(0, len(s.rows), step) if not any(a <= s.rows[i] < b for a, b in gaps)]
    return Series(s.name, s.kind, [s.rows[i] for i in keep], [s.values[i] for i in keep], s.start, s.windows)

