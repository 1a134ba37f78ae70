"""Peer-adjusted share charts 同科室对照: a share rising against its own history, excused as far as its peers rose too.

A prescriber's share of prescriptions carrying one drug is compared with its own learned share; a rise that every
colleague of the department shows the same day (an influenza season, a new guideline) is not the prescriber's
doing. :class:`PeerShareCUSUM` is a binomial CUSUM (as :class:`~models.rules.anomaly.cusum.BinomialCUSUM`, on the odds)
whose expected share for the day is

    odds(expected) = odds(own baseline) × max(1, odds(peers' share today) / odds(peers' baseline))

— the peers being the rest of the department (the prescriber left out, so a prescriber's own push does not excuse
itself). The baselines come from :class:`WeeklyTotals`: the weeks *before the last complete one*, so a rise that
creeps up over a week is judged against the weeks before it began, not learned on the way up. The own baseline is
shrunk towards the peers' baseline by ``prior_trials`` pseudo-prescriptions, so a prescriber who never wrote the drug
is expected to write it as often as colleagues do (and at least ``floor``), and the peers' share today is smoothed
the same way so that a quiet day of few colleagues is no excuse.
A fall of the peers excuses nothing and accuses nothing. Baselines fade by a factor a week (0.8: about a month's
memory, so the comparison is month-on-month in effect); a day whose evidence is at ``learn_below`` or more is learned
as the count the chart expected, not as seen, so a push is not learned as the new normal before it is reported. A
drug expected on more than 90 % of the prescriptions has nowhere to rise and is not judged.

>>> import random
>>> rng = random.Random(2)
>>> weeks, chart = WeeklyTotals(), PeerShareCUSUM(ratio=2.0)
>>> def day(i, p_own, p_peers, n=80, peers=400):
...     weeks.advance(i // 7)
...     x = {"n": n, "k": sum(rng.random() < p_own for _ in range(n)), "peer_n": peers,
...          "peer_k": sum(rng.random() < p_peers for _ in range(peers)), **weeks.baselines("D1", "IM", "oxi")}
...     score = chart.score_one(x)
...     chart.learn_one(x)
...     weeks.add({trials("D1"): n, trials("@IM"): n + peers, successes("D1", "oxi"): chart.learned(x),
...                successes("@IM", "oxi"): chart.learned(x) + x["peer_k"]})
...     return round(score, 1)
>>> max(day(i, 0.10, 0.10) for i in range(28)) < 4
True
>>> x = weeks.baselines("D1", "IM", "oxi")
>>> round(x["base_k"] / x["base_n"], 3), round(x["base_peer_k"] / x["base_peer_n"], 3)
(0.088, 0.103)
>>> max(day(i, 0.25, 0.25) for i in range(28, 33))     # the whole department: excused
0.0
>>> [day(i, 0.10 + 0.02 * (i - 35), 0.10) for i in range(35, 45)]   # this prescriber alone, 2 points a day
[0.0, 0.0, 0.0, 2.9, 5.3, 8.9, 15.3, 15.1, 15.6, 18.1]
"""
from __future__ import annotations

import math
from typing import Any

from river.base import AnomalyDetector


def trials(who: str) -> str:
    """The name of ``who``'s trials (a prescriber's prescriptions; ``@department`` for a department's)."""
    return f"n\x1f{who}"


def successes(who: str, drug: str) -> str:
    """The name of ``who``'s successes for ``drug`` (the prescriptions carrying it)."""
    return f"k\x1f{who}\x1f{drug}"


def _odds(p: float) -> float:
    return p / (1 - p) if p < 1 else math.inf


class WeeklyTotals:
    """Running totals per name in three parts: a baseline faded by ``fading_factor`` a week (the weeks before the
    last), the last complete week, and this week. :meth:`advance` moves every name to a new week at once.

    >>> w = WeeklyTotals()
    >>> w.advance(100); w.add({trials("D1"): 40.0})
    >>> w.advance(101); w.add({trials("D1"): 50.0})
    >>> w.base(trials("D1")), w.advance(102), w.base(trials("D1"))
    (0.0, None, 40.0)
    """

    __slots__ = ("fading_factor", "week", "totals")

    def __init__(self, fading_factor: float = 0.8) -> None:
        self.fading_factor = fading_factor
        self.week: int | None = None
        self.totals: dict[str, list[float]] = {}  # name → [baseline, last week, this week]

    def advance(self, week: int) -> None:
        if self.week is None:
            self.week = week
        if week <= self.week:
            return
        f, steps = self.fading_factor, min(week - self.week, 8)
        for name, (base, last, this) in list(self.totals.items()):
            for _ in range(steps):
                base, last, this = f * base + last, this, 0.0
            if base + last + this < 0.05:
                del self.totals[name]  # faded out: a prescriber or a drug gone for months
            else:
                self.totals[name] = [base, last, this]
        self.week = week

    def add(self, values: dict[str, float]) -> None:
        for name, v in values.items():
            t = self.totals.get(name)
            if t is None:
                self.totals[name] = [0.0, 0.0, v]
            else:
                t[2] += v

    def base(self, name: str) -> float:
        t = self.totals.get(name)
        return t[0] if t else 0.0

    def baselines(self, prescriber: str, department: str, drug: str) -> dict[str, float]:
        """The baselines a :class:`PeerShareCUSUM` of ``prescriber`` and ``drug`` needs, the peers being the rest of
        the department (its totals under ``@department``)."""
        own_n, own_k = self.base(trials(prescriber)), self.base(successes(prescriber, drug))
        return {"base_n": own_n, "base_k": own_k,
                "base_peer_n": max(0.0, self.base(trials(f"@{department}")) - own_n),
                "base_peer_k": max(0.0, self.base(successes(f"@{department}", drug)) - own_k)}

    def dump(self) -> list[Any]:
        return [self.week, self.totals]

    @classmethod
    def load(cls, kept: list[Any] | None, fading_factor: float = 0.8) -> "WeeklyTotals":
        w = cls(fading_factor)
        if kept:
            w.week, w.totals = kept[0], {k: list(v) for k, v in kept[1].items()}
        return w


class PeerShareCUSUM(AnomalyDetector):
    """CUSUM of the evidence that a share's odds rose ``ratio``-fold beyond what its own history and its peers explain
    (for a rare drug about a ``ratio``-fold share; for a drug on a third of the prescriptions, 2 takes it to a half).

    ``x`` is one day: ``n`` trials and ``k`` successes, the peers' ``peer_n`` and ``peer_k``, and the baselines
    ``base_n``, ``base_k``, ``base_peer_n``, ``base_peer_k`` (:meth:`WeeklyTotals.baselines`), and optionally a
    ``weight`` the day's evidence is multiplied by (a day of many trials that are not independent). The chart keeps only
    its statistic; nothing is scored before the own baseline holds ``min_trials`` trials.
    """

    __slots__ = ("ratio", "min_trials", "learn_below", "prior_trials", "floor", "max_excuse", "statistic",
                 "expected")

    def __init__(self, ratio: float = 2.0, min_trials: int = 150, learn_below: float = 4.0,
                 prior_trials: float = 50.0, floor: float = 0.002, max_excuse: float = 8.0) -> None:
        self.ratio = ratio
        self.min_trials = min_trials
        self.learn_below = learn_below
        self.prior_trials = prior_trials
        self.floor = floor
        self.max_excuse = max_excuse
        self.statistic = 0.0
        self.expected = 0.0  # the expected share of the last day learned

    @staticmethod
    def peer_baseline(x: dict[str, Any]) -> float:
        return x["base_peer_k"] / x["base_peer_n"] if x["base_peer_n"] > 0 else 0.0

    def baseline(self, x: dict[str, Any]) -> float:
        """The own share, shrunk towards the peers' by ``prior_trials`` pseudo-trials."""
        m = self.prior_trials if x["base_peer_n"] > 0 else 0.0
        total = x["base_n"] + m
        return (x["base_k"] + m * self.peer_baseline(x)) / total if total else 0.0

    def excuse(self, x: dict[str, Any]) -> float:
        """How far the odds of the peers' share today are above their baseline's (1 when they are not, or nothing is
        known)."""
        base = self.peer_baseline(x)
        if base <= 0 or base >= 1 or not x.get("peer_n"):
            return 1.0
        today = (x["peer_k"] + self.prior_trials * base) / (x["peer_n"] + self.prior_trials)
        return min(self.max_excuse, max(1.0, _odds(today) / _odds(base)))

    def expected_share(self, x: dict[str, Any]) -> float:
        own = min(max(self.baseline(x), self.floor), 0.98)
        odds = _odds(own) * self.excuse(x)
        return min(odds / (1 + odds), 0.98)

    def score_one(self, x: dict[str, Any]) -> float:
        if x["base_n"] < self.min_trials:
            return 0.0
        p0 = self.expected_share(x)
        if p0 > 0.9:
            return 0.0  # a drug on nearly every prescription has nowhere to rise: nothing to judge
        p1 = self.ratio * p0 / (1 - p0 + self.ratio * p0)  # the odds multiplied by ratio
        n, k, w = x["n"], x["k"], x.get("weight", 1.0)  # weight < 1: the day's draws are not independent
        return max(0.0, self.statistic + w * (k * math.log(p1 / p0) + (n - k) * math.log((1 - p1) / (1 - p0))))

    def learn_one(self, x: dict[str, Any]) -> None:
        self.expected = self.expected_share(x)
        self.statistic = self.score_one(x)

    def learned(self, x: dict[str, Any]) -> float:
        """The count to add to the baseline for the day just learned: as seen, or, while the evidence is at
        ``learn_below`` or more, as expected (a push is not the new normal)."""
        return float(x["k"]) if self.statistic < self.learn_below else x["n"] * self.expected

    def dump(self) -> float:
        return self.statistic

    def load(self, statistic: float | None) -> "PeerShareCUSUM":
        self.statistic = statistic or 0.0
        return self
