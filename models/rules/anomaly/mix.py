"""Composition charts 构成比监测: a shift in how a total splits into categories, against the entity's own normal.

A hospital's medical waste splits into infectious, sharps, pathological, pharmaceutical and chemical waste in
proportions its wards and theatres set; when one category quietly stops being declared (infusion sets sold to a
recycler, pharmaceutical waste going out of the back door) the total may hardly move, but the mix does. A
:class:`MixCUSUM` learns an entity's usual shares from its own days (an exponentially weighted mean whose weight
starts at 1/n) and measures each day's *shift* from them as the total variation distance — half the sum of the
absolute share differences, the share of the weight that would have to change category to give back the
normal. A one-sided CUSUM of that distance, standardized by its own learned mean and spread
(:class:`~models.rules.anomaly.cusum.GaussianCUSUM`), adds up the evidence: a site whose mix wobbles by a few
points day to day needs a bigger move than a regular one. A day's distance below ``min_shift`` is no evidence at
all (a vaccination campaign that adds a few points of sharps is not a shift worth an inspector), and nothing is
learned from a day while the chart is out of control, so a lasting shift does not become the normal until it
has been reported.

>>> import random
>>> rng = random.Random(3)
>>> normal = {"infectious": 74, "sharps": 10, "pathological": 5, "pharmaceutical": 6, "chemical": 5}
>>> def day(factor=None):
...     f = factor or {}
...     return {"kg": {c: w * f.get(c, 1.0) * rng.uniform(0.85, 1.15) for c, w in normal.items()}}
>>> chart = MixCUSUM()
>>> for _ in range(14):
...     chart.learn_one(day())
>>> round(chart.shares["infectious"], 3), round(chart.distance.mean, 3)
(0.732, 0.028)
>>> round(chart.score_one(day({"sharps": 1.5})), 2)          # a few more points of sharps: no evidence
0.0
>>> shifted = day({"infectious": 0.4})                       # infectious waste leaves the books
>>> round(shift(chart.shares, shares_of(shifted["kg"])), 3), round(chart.score_one(shifted), 1)
(0.234, 9.3)
"""
from __future__ import annotations

from typing import Any

from river.base import AnomalyDetector

from models.rules.anomaly.cusum import GaussianCUSUM


def shares_of(amounts: dict[str, float]) -> dict[str, float]:
    """Each category's share of the total (empty when the total is zero).

    >>> shares_of({"a": 3.0, "b": 1.0})
    {'a': 0.75, 'b': 0.25}
    """
    total = sum(amounts.values())
    return {c: v / total for c, v in amounts.items()} if total > 0 else {}


def shift(normal: dict[str, float], today: dict[str, float]) -> float:
    """Total variation distance between two compositions: the share of the weight in another category.

    >>> shift({"a": 0.75, "b": 0.25}, {"a": 0.5, "b": 0.4, "c": 0.1})
    0.25
    """
    return round(0.5 * sum(abs(normal.get(c, 0.0) - today.get(c, 0.0)) for c in {*normal, *today}), 12)


class MixCUSUM(AnomalyDetector):
    """CUSUM of a composition's daily shift from its learned shares (see the module's docstring).

    ``x = {"kg": {category: amount}}``. ``warmup`` days are learned before any score; ``k`` is the slack in
    standard deviations of the shift; ``min_sd`` floors that deviation (points of share), ``min_shift`` is the
    smallest distance that counts as evidence; ``fading_factor`` how fast the learned shares follow (0.1: about
    the last ten days). A day more than ``learn_z`` deviations off, or while the statistic is at ``learn_below``
    or more, is not learned.
    """

    def __init__(self, k: float = 1.0, warmup: int = 7, fading_factor: float = 0.1, min_sd: float = 0.02,
                 min_shift: float = 0.10, learn_below: float = 2.5, learn_z: float = 3.0) -> None:
        self.k = k
        self.warmup = warmup
        self.fading_factor = fading_factor
        self.min_shift = min_shift
        self.learn_below = learn_below
        self.learn_z = learn_z
        # the usual day-to-day distance: its mean and spread (the spread floored at a quarter of the mean)
        self.distance = GaussianCUSUM("up", fading_factor=fading_factor, min_rel_sd=0.25, min_sd=min_sd)
        self.shares: dict[str, float] = {}
        self.n = 0
        self.statistic = 0.0

    def dump(self) -> list[Any]:
        return [self.distance.dump(), self.shares, self.n, self.statistic]

    def load(self, values: list[Any]) -> None:
        self.distance.load(values[0])
        self.shares, self.n, self.statistic = dict(values[1]), values[2], values[3]

    def score_one(self, x: dict[str, Any]) -> float:
        today = shares_of(x["kg"])
        if not today or self.n <= self.warmup:
            return 0.0
        d = shift(self.shares, today)
        seen = d if d >= self.min_shift else min(d, self.distance.mean)  # below min_shift: no evidence
        return max(0.0, self.statistic + (seen - self.distance.mean) / self.distance.sd - self.k)

    def learn_one(self, x: dict[str, Any]) -> None:
        today = shares_of(x["kg"])
        if not today:
            return
        self.statistic = self.score_one(x)
        if self.n:
            d = shift(self.shares, today)
            if self.n > self.warmup and (self.statistic >= self.learn_below
                                         or (d - self.distance.mean) / self.distance.sd >= self.learn_z):
                self.n += 1
                return  # out of control: the day teaches nothing
            self.distance._learn(d)
        self.n += 1
        a = max(self.fading_factor, 1.0 / self.n)
        for c in {*self.shares, *today}:
            self.shares[c] = (1 - a) * self.shares.get(c, 0.0) + a * today.get(c, 0.0)
