"""A level that keeps learning (水平漂移检测), in river's detector protocol.

The question for a fridge is "has its temperature level moved away from where it has been?" —
answered at whatever resolution the device reports (every 5 minutes, hourly, or one daily
summary), and still answered after the first alarm, a setpoint change or a season.

* **The level now**: the mean of the readings of the trailing ``span_s`` (a day by default: door
  openings in working hours make hours unlike each other, days much less), kept as ``buckets``
  sums of ``span_s / buckets`` each, so the state stays small whatever the reporting rate. The
  window slides: the bucket leaving it counts for the part of it still inside (its readings taken
  as spread evenly over it), so the level is a true trailing day at every reading. A window that
  dropped a whole bucket at each bucket boundary averaged 23 hours and part of the current one: on
  a fridge with a daily rhythm (clinic-hour door openings, an afternoon-warm room, a defrost timer)
  that level swung every hour and alarmed at each swing — 264 alarms in two normal weeks of one
  series. A regular daily cycle of any shape now averages out of the level; a change in it does not.
* **The normal**: an exponentially weighted mean and variance of whole, non-overlapping spans
  (calendar days of UTC by default), with a memory of ``memory_s`` (a week: long enough to
  outlast an incident, short enough to follow a season or a moved fridge). It learns from
  *every* span, but a span's pull is clipped at ``clip`` standard deviations once warm: a
  failure moves the normal only a little per day, a lasting change (a new setpoint) becomes the
  normal within about a memory.
* **The normal of each hour of the day** (the device's daily rhythm, learned, not configured): per
  clock hour (``buckets`` slots of the span), an exponentially weighted mean of that hour's mean
  reading over past days, with the same memory and clipping as the normal. A fridge that warms every
  afternoon, a defrost timer at 02:00, door openings in clinic hours: each hour is judged against
  the same hour of past days, so the rhythm is normal and a *change* in it is not. The spread an
  hour is judged with is the larger of its own day-to-day spread and the spread pooled over all
  hours (a few days give each hour too few samples; the pool has 24 a day), floored at ``min_sd``.
  :attr:`TrailingLevel.rhythm_z` is how far *every one* of the last ``rhythm_hours`` completed hours
  is from its normal in the same direction (the smallest of their scores): sustained, so one or two odd
  hours (a long door opening, a short excursion) are not a change of rhythm.
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
>>> next(i for i, z in enumerate(scores) if z >= 3) * 5    # minutes: three whole hours above their normals
185
>>> level.hour_normal(t0 + 11 * 86400)[0] > 5.0     # and what it learns of them moves up a little
True
"""
from __future__ import annotations

import math
from typing import Any

from river.base import AnomalyDetector


class TrailingLevel(AnomalyDetector):
    """The trailing span's mean against a normal learned from whole spans (see the module)."""

    def __init__(self, span_s: float = 86400.0, buckets: int = 24, memory_s: float = 7 * 86400.0,
                 clip: float = 2.0, warmup: int = 3, min_sd: float = 0.1, min_coverage: float = 0.5,
                 rhythm_hours: int = 3, rhythm_weight: float = 0.5) -> None:
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
        self.rhythm_hours = rhythm_hours
        self.rhythm_weight = rhythm_weight  # what a standard deviation of the hours' score counts in the score
        self.level_z = 0.0  # the day's part of the last score (not kept: recomputed at every reading)
        #: the normal of each slot of the span (hour of the day): [mean, var, spans learned], or None
        self.hours: list[list[float] | None] = [None] * buckets
        #: the latest completed buckets' scores against their slot's normal: [bucket index, z, mean, normal, sd]
        self.scored: list[list[float]] = []

    @property
    def sd(self) -> float:
        return max(math.sqrt(self.var), self.min_sd)

    @property
    def warm(self) -> bool:
        return self.mean is not None and self.spans >= self.warmup

    def profile_mean(self) -> float | None:
        """The mean of the hours' normals: the day's level the rhythm implies (None until every hour has one)."""
        if any(h is None for h in self.hours):
            return None
        return sum(h[0] for h in self.hours) / self.buckets  # type: ignore[index]

    def _part(self, b: float, total: float, count: float, offset: float | None) -> float:
        # a bucket's readings, less the normal of their hour once every hour has one
        return total if offset is None else total - count * self.hours[int(b) % self.buckets][0]  # type: ignore[index]

    def window(self, t: float) -> tuple[float, float, float | None]:
        """(sum, count, offset) of the readings learned in the span ending at ``t``: whole buckets, and of the bucket
        leaving the window the share of it still inside (1 at the start of the current bucket, 0 at its end). Once
        every hour has a normal, the sum is of the readings *less their hour's normal* and ``offset`` is
        :meth:`profile_mean`: the level is then ``offset + sum / count``, which is the plain mean when the readings
        cover the day evenly, and is not pulled by the hours a gap left out (a silence through the cold night
        would otherwise read as a warm day)."""
        now = int(t // self.bucket_s)
        first = now - self.buckets + 1
        inside = 1.0 - (t - now * self.bucket_s) / self.bucket_s  # of bucket first - 1
        offset = self.profile_mean()
        total = count = 0.0
        for b in self.recent:
            if b[0] >= first:
                total += self._part(b[0], b[1], b[2], offset)
                count += b[2]
            elif b[0] == first - 1:
                total += inside * self._part(b[0], b[1], b[2], offset)
                count += inside * b[2]
        return total, count, offset

    def _with(self, x: dict[str, Any], window: tuple[float, float, float | None] | None = None) -> float:
        total, count, offset = window or self.window(x["t"])
        total, count = total + self._part(x["t"] // self.bucket_s, x["y"], 1, offset), count + 1
        return (offset or 0.0) + total / count

    def level(self, x: dict[str, Any] | None = None) -> float | None:
        """The mean of the trailing span (ending at ``x``, and with it, when given; not learned)."""
        if x is not None:
            return self._with(x)
        if not self.recent:
            return None
        total, count, offset = self.window((self.recent[-1][0] + 1) * self.bucket_s)
        return (offset or 0.0) + total / count if count else None

    def settled(self) -> float:
        """How far from normal anything still is, on the score's scale: the day's level (as :meth:`score_one` found
        it last reading; call after it) and the last hours' mean distance from their normals
        (:attr:`rhythm_extent`). An episode opened by the score ends when this is small."""
        return max(abs(self.level_z), self.rhythm_weight * self.rhythm_extent)

    def score_one(self, x: dict[str, Any]) -> float:
        self.level_z = 0.0
        if not self.warm:
            return 0.0
        window = self.window(x["t"])
        if 1 + window[1] < self.min_coverage * self.per_span:
            return 0.0
        level_z = self.level_z = (self._with(x, window) - self.mean) / self.sd  # type: ignore[operator]
        hour_z = self.rhythm_weight * self.rhythm_z
        return level_z if abs(level_z) >= abs(hour_z) else hour_z

    def learn_one(self, x: dict[str, Any]) -> None:
        t, y = x["t"], x["y"]
        b = int(t // self.bucket_s)
        if self.recent and self.recent[-1][0] == b:
            self.recent[-1][1] += y
            self.recent[-1][2] += 1
        elif not self.recent or b > self.recent[-1][0]:
            if self.recent:
                self._learn_hour(*self.recent[-1])
            self.recent.append([b, y, 1])
        while self.recent and self.recent[0][0] < b - self.buckets:  # the one leaving the window is kept
            self.recent.pop(0)
        s = int(t // self.span_s)
        if s != self.block[0]:
            if self.block[2]:
                self._learn_span(self._span_mean(), self.block[2])
            self.block = [s, 0.0, 0]
        self.block[1] += y
        self.block[2] += 1

    def _span_mean(self) -> float:
        """The mean of the span just filled, its gaps filled by their hours' normals (see :meth:`window`)."""
        offset = self.profile_mean()
        if offset is None:
            return self.block[1] / self.block[2]
        first = self.block[0] * self.buckets
        parts = [b for b in self.recent if first <= b[0] < first + self.buckets]
        count = sum(b[2] for b in parts)
        if not count:
            return self.block[1] / self.block[2]
        return offset + sum(self._part(b[0], b[1], b[2], offset) for b in parts) / count

    def _hour_sd(self, slot: list[float]) -> float:
        learned = [h[1] for h in self.hours if h is not None and h[2] >= 2]
        pooled = sum(learned) / len(learned) if learned else 0.0
        return max(math.sqrt(slot[1]), math.sqrt(pooled), self.min_sd)

    def _learn_hour(self, b: float, total: float, count: float) -> None:
        """A bucket is complete: score it against its slot's normal, then let the slot learn it."""
        if self.per_span and count < self.min_coverage * self.per_span / self.buckets:
            return  # a few readings at the edge of a silence are not the hour's level
        m = total / count
        i = int(b) % self.buckets
        slot = self.hours[i]
        if slot is None:
            self.hours[i] = [m, 0.0, 1]
            return
        sd = self._hour_sd(slot)
        r = m - slot[0]
        if self.warm and slot[2] >= self.warmup:
            self.scored = [s for s in self.scored if s[0] > b - 2 * self.rhythm_hours][-(self.rhythm_hours - 1):]
            self.scored.append([b, r / sd, m, slot[0], sd])
            r = max(-self.clip * sd, min(self.clip * sd, r))
        slot[0] += self.alpha * r
        slot[1] = (1 - self.alpha) * (slot[1] + self.alpha * r * r)
        slot[2] += 1

    @property
    def rhythm_z(self) -> float:
        """How far *every one* of the last ``rhythm_hours`` completed hours is from its hour's normal, in the same
        direction: the smallest of their scores (0 when they disagree in sign, and until as many hours in a row —
        gaps of a few hours allowed — have been judged). A short excursion spoils an hour or two, not three."""
        if len(self.scored) < self.rhythm_hours:
            return 0.0
        z = [s[1] for s in self.scored]
        if min(z) > 0:
            return min(z)
        if max(z) < 0:
            return max(z)
        return 0.0

    @property
    def rhythm_extent(self) -> float:
        """The mean distance (each in its hour's spread, either direction) of the last ``rhythm_hours`` completed
        hours from their normals: an episode of the hours is over when they are back on the whole."""
        return sum(abs(s[1]) for s in self.scored) / len(self.scored) if self.scored else 0.0

    def trace(self) -> dict[str, Any]:
        """The last span hour by hour, for an operator: the start of its first hour (epoch s), and per hour the
        observed mean (None where nothing was read), its hour's normal and spread (None before the hour's first
        day) — what an alert shows against the device's learned day."""
        if not self.recent:
            return {"start_t": None, "observed": [], "normal": [], "sd": []}
        last = int(self.recent[-1][0])
        have = {int(b[0]): b[1] / b[2] for b in self.recent if b[2]}
        out: dict[str, Any] = {"start_t": (last - self.buckets + 1) * self.bucket_s, "observed": [], "normal": [],
                               "sd": []}
        for b in range(last - self.buckets + 1, last + 1):
            slot = self.hours[b % self.buckets]
            m = have.get(b)
            out["observed"].append(None if m is None else round(m, 2))
            out["normal"].append(None if slot is None else round(slot[0], 2))
            out["sd"].append(None if slot is None else round(self._hour_sd(slot), 2))
        return out

    def hour_normal(self, t: float) -> tuple[float, float] | None:
        """(mean, spread) learned for the hour of the span ``t`` falls in; None before its first day."""
        slot = self.hours[int(t // self.bucket_s) % self.buckets]
        return None if slot is None else (slot[0], self._hour_sd(slot))

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
        return [self.mean, self.var, self.spans, self.block, self.recent, self.per_span, self.hours, self.scored]

    def load(self, kept: list[Any] | None) -> "TrailingLevel":
        if kept:
            self.mean, self.var, self.spans, self.block, self.recent, self.per_span = kept[:6]
            if len(kept) > 6:  # kept before the hours were learned: they start now
                self.hours, self.scored = kept[6], kept[7]
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

    def observe(self, z: float, settled: float | None = None) -> str | None:
        """The direction of a new episode this score opens, else None; ``settled``: how far from normal things
        still are, when that is not ``|z|`` (it re-arms the detector)."""
        if self.armed and abs(z) >= self.z_on:
            self.armed = False
            return "rise" if z > 0 else "fall"
        if not self.armed and (abs(z) if settled is None else settled) <= self.z_off:
            self.armed = True
        return None
