"""A level that keeps learning (水平漂移检测), in river's detector protocol.

The question for a fridge is "has its temperature level moved away from where it has been?" —
answered at whatever resolution the device reports (every 5 minutes, hourly, or one daily
summary), and still answered after the first alarm, a setpoint change or a season.

* **The level now**: the mean of the readings of the trailing ``span_s`` (a day by default: door
  openings in working hours make hours unlike each other, days much less), kept as ``buckets``
  sums of ``span_s / buckets`` each, so the state stays small whatever the reporting rate.
* **The normal**: an exponentially weighted mean and variance of whole, non-overlapping spans
  (calendar days of UTC by default), with a memory of ``memory_s`` (a week: long enough to
  outlast an incident, short enough to follow a season or a moved fridge). It learns from
  *every* span, but a span's pull is clipped at ``clip`` standard deviations once warm: a
  failure moves the normal only a little per day, a lasting change (a new setpoint) becomes the
  normal within about a memory.
* **The score** (``score_one``): how many of the normal's standard deviations the trailing
  level is away from it (sign: up positive), floored at ``min_sd`` — 0 while the trailing span
  holds fewer than ``min_coverage`` of the readings a whole span has held on average (a device
  back from a silence, a vehicle's first readings of a trip: a few readings are not a level). Higher magnitude is more
  anomalous; :class:`LevelEpisode` turns it into episodes with hysteresis.

>>> import math, random
>>> rng = random.Random(7)
>>> level = TrailingLevel()
>>> t0 = 1767225600.0                                # readings every 5 minutes for 10 days
>>> def day(d, offset=0.0):
...     out = []
...     for i in range(288):
...         t = t0 + d * 86400 + 300 * i
...         x = {"t": t, "y": 5.0 + math.sin(i / 8) + rng.gauss(0, 0.1) + offset}
...         out.append(level.score_one(x))
...         level.learn_one(x)
...     return out
>>> _ = [day(d) for d in range(10)]
>>> round(level.mean, 2), level.sd              # days this alike: the spread is the floor, 0.1 °C
(5.03, 0.1)
>>> round(max(map(abs, day(10))), 1) < 3        # an ordinary day stays well inside
True
>>> scores = day(11, offset=1.5)               # the level rises by 1.5 °C
>>> next(i for i, z in enumerate(scores) if z >= 3) * 5    # minutes until the trailing day is 0.3 °C up
295
"""
from __future__ import annotations

import math
from typing import Any

from river.base import AnomalyDetector


class TrailingLevel(AnomalyDetector):
    """The trailing span's mean against a normal learned from whole spans (see the module)."""

    def __init__(self, span_s: float = 86400.0, buckets: int = 24, memory_s: float = 7 * 86400.0,
                 clip: float = 2.0, warmup: int = 3, min_sd: float = 0.1, min_coverage: float = 0.5) -> None:
        self.span_s = span_s
        self.bucket_s = span_s / buckets
        self.buckets = buckets
        self.alpha = min(1.0, span_s / memory_s)  # one span's weight in the normal
        self.clip = clip
        self.warmup = warmup
        self.min_sd = min_sd
        self.min_coverage = min_coverage
        self.per_span = 0.0  # readings a whole span holds, on average (weighted like the normal)
        self.mean: float | None = None
        self.var = 0.0
        self.spans = 0  # whole spans learned
        self.block: list[float] = [-1, 0.0, 0]  # the span being filled: [index, sum, count]
        self.recent: list[list[float]] = []  # the trailing buckets: [index, sum, count], oldest first

    @property
    def sd(self) -> float:
        return max(math.sqrt(self.var), self.min_sd)

    @property
    def warm(self) -> bool:
        return self.mean is not None and self.spans >= self.warmup

    def level(self, x: dict[str, Any] | None = None) -> float | None:
        """The mean of the trailing span (with ``x`` when given, not learned)."""
        total = sum(b[1] for b in self.recent)
        count = sum(b[2] for b in self.recent)
        if x is not None:
            first = int(x["t"] // self.bucket_s) - self.buckets + 1
            old = sum(b[1] for b in self.recent if b[0] < first), sum(b[2] for b in self.recent if b[0] < first)
            total, count = total - old[0] + x["y"], count - old[1] + 1
        return total / count if count else None

    def score_one(self, x: dict[str, Any]) -> float:
        if not self.warm:
            return 0.0
        first = int(x["t"] // self.bucket_s) - self.buckets + 1
        if 1 + sum(b[2] for b in self.recent if b[0] >= first) < self.min_coverage * self.per_span:
            return 0.0
        return (self.level(x) - self.mean) / self.sd  # type: ignore[operator]

    def learn_one(self, x: dict[str, Any]) -> None:
        t, y = x["t"], x["y"]
        b = int(t // self.bucket_s)
        if self.recent and self.recent[-1][0] == b:
            self.recent[-1][1] += y
            self.recent[-1][2] += 1
        elif not self.recent or b > self.recent[-1][0]:
            self.recent.append([b, y, 1])
        while self.recent and self.recent[0][0] <= b - self.buckets:
            self.recent.pop(0)
        s = int(t // self.span_s)
        if s != self.block[0]:
            if self.block[2]:
                self._learn_span(self.block[1] / self.block[2], self.block[2])
            self.block = [s, 0.0, 0]
        self.block[1] += y
        self.block[2] += 1

    def _learn_span(self, m: float, n: float) -> None:
        self.per_span = n if self.mean is None else self.per_span + self.alpha * (n - self.per_span)
        if self.mean is None:
            self.mean = m
        else:
            r = m - self.mean
            if self.warm:
                r = max(-self.clip * self.sd, min(self.clip * self.sd, r))
            self.mean += self.alpha * r
            self.var = (1 - self.alpha) * (self.var + self.alpha * r * r)
        self.spans += 1

    def dump(self) -> list[Any]:
        """What it has learned, as JSON values (the parameters come from the configuration)."""
        return [self.mean, self.var, self.spans, self.block, self.recent, self.per_span]

    def load(self, kept: list[Any] | None) -> "TrailingLevel":
        if kept:
            self.mean, self.var, self.spans, self.block, self.recent, self.per_span = kept
        return self


class LevelEpisode:
    """Episodes of a level away from its normal: one opens when |score| reaches ``z_on`` (the
    direction it went), and the detector re-arms once |score| is back within ``z_off``.

    >>> e = LevelEpisode(z_on=3.0, z_off=1.0)
    >>> [e.observe(z) for z in (0.5, 3.2, 4.0, 2.0, 0.8, -3.5)]
    [None, 'rise', None, None, None, 'fall']
    """

    __slots__ = ("z_on", "z_off", "armed")

    def __init__(self, z_on: float = 3.0, z_off: float = 1.0) -> None:
        self.z_on = z_on
        self.z_off = z_off
        self.armed = True

    def observe(self, z: float) -> str | None:
        """The direction of a new episode this score opens, else None."""
        if self.armed and abs(z) >= self.z_on:
            self.armed = False
            return "rise" if z > 0 else "fall"
        if not self.armed and abs(z) <= self.z_off:
            self.armed = True
        return None
