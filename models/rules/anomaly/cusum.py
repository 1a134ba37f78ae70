"""CUSUM charts (累积和控制图) with a baseline learned online, in river's detector protocol.

A cumulative-sum chart adds up the evidence that a series has moved away from its normal
and forgets it when the series comes back; it catches a slow ramp that no single day's
value would betray, and its statistic explains itself ("the evidence accumulated over five
days"). The normal is learned online from the entity's own history, only while the chart is
in control, so a drift does not teach the baseline to accept it.

``score_one(x)`` is the statistic the chart *would* have after ``x``; ``learn_one(x)``
moves it there and updates the baseline. Higher is more anomalous, as in river.

Counts (a prescriber's antimicrobial prescriptions among all, per day):

>>> import random
>>> rng = random.Random(1)
>>> chart = BinomialCUSUM(ratio=2.0, min_trials=100)
>>> for day in range(20):
...     n = 60
...     chart.learn_one({"n": n, "k": sum(rng.random() < 0.12 for _ in range(n))})
>>> round(chart.p0, 3), chart.statistic
(0.118, 0.0)
>>> scores = []
>>> for day in range(8):                         # the share doubles
...     x = {"n": 60, "k": sum(rng.random() < 0.24 for _ in range(60))}
...     scores.append(round(chart.score_one(x), 1))
...     chart.learn_one(x)
>>> scores
[2.3, 4.9, 6.7, 8.6, 10.4, 18.1, 17.4, 19.2]

Amounts (an institution's waste per day, watching for a drop):

>>> chart = GaussianCUSUM(direction="down")
>>> for day in range(15):
...     chart.learn_one({"y": 500 + rng.gauss(0, 25)})
>>> round(chart.score_one({"y": 490.0}), 2), round(chart.score_one({"y": 200.0}), 1)
(0.21, 11.6)
"""
from __future__ import annotations

import math
from typing import Any

from river.base import AnomalyDetector


class _Stateful:
    """What a chart has learned, as JSON values (its parameters come from the configuration)."""

    _learned_fields: tuple[str, ...] = ()

    def dump(self) -> list[float]:
        return [getattr(self, f) for f in self._learned_fields]

    def load(self, values: list[float]) -> None:
        for f, v in zip(self._learned_fields, values):
            setattr(self, f, v)


class GaussianCUSUM(_Stateful, AnomalyDetector):
    """One-sided CUSUM of a value standardized by its exponentially weighted mean and variance.

    ``direction`` "up" or "down"; ``k`` the slack in standard deviations; ``warmup`` values are
    learned before any score; ``min_rel_sd`` floors the deviation at a share of the mean (a
    series too regular must not make every wobble an alarm), ``min_sd`` at an absolute value; values
    more than ``learn_z``
    deviations away, or while the statistic is at ``learn_below`` or more, are not learned.
    """

    _learned_fields = ("_m", "_v", "_learned", "n", "statistic")

    def __init__(self, direction: str = "up", k: float = 0.5, fading_factor: float = 0.1, warmup: int = 5,
                 min_rel_sd: float = 0.05, learn_z: float = 3.0, learn_below: float = 2.5, min_sd: float = 1e-9) -> None:
        if direction not in ("up", "down"):
            raise ValueError("direction is 'up' or 'down'")
        self.direction = direction
        self.k = k
        self.fading_factor = fading_factor
        self.warmup = warmup
        self.min_rel_sd = min_rel_sd
        self.learn_z = learn_z
        self.learn_below = learn_below
        self.min_sd = min_sd
        self._m = 0.0
        self._v = 0.0
        self._learned = 0
        self.n = 0
        self.statistic = 0.0

    @property
    def mean(self) -> float:
        return self._m

    @property
    def sd(self) -> float:
        return max(math.sqrt(max(self._v, 0.0)), self.min_rel_sd * abs(self._m), self.min_sd)

    def _learn(self, y: float) -> None:
        """Exponentially weighted mean and variance whose weight starts at 1/n: the first values are
        averaged plainly, so the normal does not remember whichever value happened to come first."""
        self._learned += 1
        a = max(self.fading_factor, 1.0 / self._learned)
        d = y - self._m
        self._m += a * d
        self._v = (1 - a) * (self._v + a * d * d)

    def z(self, y: float) -> float:
        """Standardized value, signed so that positive points in the watched direction."""
        z = (y - self.mean) / self.sd
        return z if self.direction == "up" else -z

    def score_one(self, x: dict[str, Any]) -> float:
        if self.n < self.warmup:
            return 0.0
        return max(0.0, self.statistic + self.z(x["y"]) - self.k)

    def learn_one(self, x: dict[str, Any]) -> None:
        y = x["y"]
        warm = self.n >= self.warmup
        self.statistic = self.score_one(x)
        if not warm or (self.statistic < self.learn_below and abs(self.z(y)) < self.learn_z):
            self._learn(y)
        self.n += 1


class BinomialCUSUM(_Stateful, AnomalyDetector):
    """CUSUM of the log-likelihood ratio that a share has risen from ``p0`` to ``ratio`` × ``p0``.

    ``x = {"n": trials, "k": successes}``. The baseline share is learned from counts faded by
    ``fading_factor`` per observation (0.97 ≈ a month of days) while the statistic stays below
    ``learn_below`` (learning only at zero would keep the busier days out and bias the share
    low), and nothing is scored before the baseline holds ``min_trials`` trials.
    """

    _learned_fields = ("_trials", "_successes", "statistic")

    def __init__(self, ratio: float = 2.0, fading_factor: float = 0.97, min_trials: int = 100,
                 learn_below: float = 4.0) -> None:
        self.ratio = ratio
        self.fading_factor = fading_factor
        self.min_trials = min_trials
        self.learn_below = learn_below
        self._trials = 0.0
        self._successes = 0.0
        self.statistic = 0.0

    @property
    def p0(self) -> float:
        return self._successes / self._trials if self._trials else 0.0

    def increment(self, n: int, k: int) -> float:
        p0 = min(max(self.p0, 1e-4), 0.98)
        p1 = min(self.ratio * p0, 0.999)
        return k * math.log(p1 / p0) + (n - k) * math.log((1 - p1) / (1 - p0))

    def score_one(self, x: dict[str, Any]) -> float:
        if self._trials < self.min_trials or self._successes <= 0:
            return 0.0
        return max(0.0, self.statistic + self.increment(x["n"], x["k"]))

    def learn_one(self, x: dict[str, Any]) -> None:
        self.statistic = self.score_one(x)
        if self.statistic < self.learn_below:
            f = self.fading_factor
            self._trials = f * self._trials + x["n"]
            self._successes = f * self._successes + x["k"]


class Episode:
    """An entity's chart with its alerting state: alert once per excursion of the statistic above
    ``threshold``, re-armed when the statistic is back at zero.

    >>> e = Episode(GaussianCUSUM(warmup=0, min_rel_sd=0.1), threshold=2.0, region="310101")
    >>> e.chart._learn(10.0)
    >>> [e.observe({"y": y}) for y in (10.0, 14.0, 14.0, 10.0, 6.0, 6.0, 14.0, 14.0)]
    [False, True, False, False, False, False, True, False]
    """

    __slots__ = ("chart", "threshold", "region", "armed")

    def __init__(self, chart: AnomalyDetector, threshold: float, region: str = "unknown") -> None:
        self.chart = chart
        self.threshold = threshold
        self.region = region
        self.armed = True

    def dump(self) -> list[Any]:
        """The chart's learned values and whether it is armed: JSON, for a state store."""
        return [self.chart.dump(), self.armed]

    def load(self, kept: list[Any] | None) -> "Episode":
        if kept:
            self.chart.load(kept[0])
            self.armed = kept[1]
        return self

    def observe(self, x: dict[str, Any]) -> bool:
        """Learn ``x``; True when this observation opens a new episode (the moment to alert)."""
        self.chart.learn_one(x)
        s = self.chart.statistic
        if s == 0:
            self.armed = True
        if self.armed and s >= self.threshold:
            self.armed = False
            return True
        return False
