"""Abnormal temperature dynamics 温度异常趋势: a fridge drifting away from its own normal before it fails.

A compressor that is wearing out, a door seal that leaks or a thermostat that creeps shows as
the unit's temperature level moving away from where it has been for days — while every reading
is still inside 2–8 °C, so no excursion rule can see it. Each device's level is the mean of its
trailing day of readings (a true sliding day), judged at every reading against the normal learned from
its own past days (:class:`models.rules.anomaly.level.TrailingLevel`): the normal keeps learning — a
failure moves it only a little per day, a new setpoint, a season or a moved fridge becomes the normal
within about a week. The model also learns the device's **daily rhythm** — the normal of each hour
of the day — so a room that warms every afternoon, a defrost timer or clinic-hour door openings are
normal, a silence through the cold night does not read as a warm day, and a change *in* the rhythm
(the afternoon peak gone, a defrost that no longer ends) alarms although the day's mean has barely
moved: the score is the larger of the day's and of the last hours' against their hours' normal
(weighted by ``rhythm_weight``). An alert opens when the score reaches ``z_on`` standard deviations
(rise or fall); the detector re-arms once it is back within ``z_off``, so a second failure alarms
again. It works at the rate the device reports: every minute, 5 minutes, hourly, or one daily
summary. The entity is the device; the alert carries the day's level and normal, and the last
hours' level against their normal, for the operator to see why.

>>> import math, random
>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> rng = random.Random(3)
>>> rt = Runtime([DynamicsDetector()])
>>> def readings(days, drift_per_day=0.0, start_day=0):
...     out = []
...     for i in range(days * 288):                   # a reading every 5 min, a 40-min compressor cycle
...         minute = start_day * 1440 + 5 * i
...         temp = 5.0 + math.sin(minute / 40 * 2 * math.pi) + rng.gauss(0, 0.1) + drift_per_day * i / 288
...         e = {"device_id": "FR-1", "device_kind": "fridge", "facility_id": "CDC-1", "temperature_c": temp,
...              "_t": 1791000000.0 + 60 * minute}
...         out += rt.process(e, Source("zhijian.telemetry", 0, minute, f"FR-1@{minute}"))
...     return out
>>> readings(10)                                  # ten normal days
[]
>>> [a] = readings(6, drift_per_day=0.25, start_day=10)
>>> a.numbers["direction"], round(a.numbers["hours_since_normal"] or 0)
('rise', 18)
>>> print(a.reason)   # doctest: +ELLIPSIS
fridge FR-1 at CDC-1: mean ... °C over the last 24 h against a normal of 5.0... ± 0.10 °C (... standard deviations; alarm at 3)
>>> readings(10, start_day=16)                    # back to normal: the detector re-arms …
[]
>>> [(a.numbers["direction"]) for a in readings(2, drift_per_day=-0.5, start_day=26)]   # … and a fall alarms again
['fall']
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.contracts.alert import Alert, Source, iso
from models.rules.anomaly.level import LevelEpisode, TrailingLevel
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class DynamicsLimits:
    """Configuration ``[coldchain.abnormal_dynamics]``; the rationale of each is in models/rules/anomaly/level.py."""

    span_hours: float = 24.0  # the level is the trailing day's mean: hours differ (door openings), days less
    memory_days: float = 7.0  # how far back the normal reaches: outlasts an incident, follows a season
    clip_sd: float = 2.0  # a day pulls the normal by at most this many standard deviations
    warmup_days: int = 3  # whole days learned before judging
    min_sd_c: float = 0.1  # a level steadier than this is still not a tenth of a degree away
    z_on: float = 3.0  # the classic 3-sigma control limit
    z_off: float = 1.0  # back within one standard deviation: the episode is over, the detector re-arms
    rearm_hold_hours: float = 6.0  # and only this long after the day's level was last out (its window's tail)
    rhythm_hours: int = 3  # a change of rhythm is judged over this many hours: one odd hour is not one
    rhythm_weight: float = 0.5  # the hours' score counts half: a change of rhythm needs 6 standard deviations


class DynamicsDetector(KeyedDetector):
    name = "coldchain.abnormal_dynamics"
    version = "3"
    stream = "telemetry"
    Limits = DynamicsLimits  # its configuration section [coldchain.abnormal_dynamics]
    key = "device"
    key_field = "device_id"
    #: a unit switched off for a month has been moved or serviced: its old normal is not worth keeping
    retention_s = 30 * 86400.0

    def _level(self) -> TrailingLevel:
        lim = self.limits
        return TrailingLevel(span_s=lim.span_hours * 3600, buckets=24, memory_s=lim.memory_days * 86400,
                             clip=lim.clip_sd, warmup=lim.warmup_days, min_sd=lim.min_sd_c,
                             rhythm_hours=lim.rhythm_hours, rhythm_weight=lim.rhythm_weight)

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        t, st = event["_t"], ctx.state
        if t <= st.get("last_t", t - 1):
            return []  # a late or redelivered reading: already learned
        st["last_t"] = t
        level = self._level().load(st.get("level"))
        x = {"t": t, "y": event["temperature_c"]}
        z = level.score_one(x)
        level.learn_one(x)
        st["level"] = level.dump()
        lim = self.limits
        # two views, each with its own episode: the day's level, and the last hours against their hours' normal
        day, hours = LevelEpisode(lim.z_on, lim.z_off), LevelEpisode(lim.z_on, lim.z_off)
        day.armed, hours.armed = st.get("armed", True), st.get("armed_hours", True)
        was_open = not (day.armed and hours.armed)
        if abs(level.level_z) >= lim.z_on:
            st["day_hot_t"] = t  # the day's level was out: its window holds abnormal readings for a span yet
        # the day's view re-arms once calm *and* `rearm_hold_hours` after it was last out: the sliding day still
        # holds part of the incident and swings as it slides past it (a flattened day swung it both ways)
        cooled = t - st.get("day_hot_t", float("-inf")) >= lim.rearm_hold_hours * 3600
        opened_day = day.observe(level.level_z, abs(level.level_z) if cooled else float("inf"))
        opened_hours = hours.observe(lim.rhythm_weight * level.rhythm_z, lim.rhythm_weight * level.rhythm_extent)
        st["armed"], st["armed_hours"] = day.armed, hours.armed
        if level.settled() <= lim.z_off:
            st["normal_t"] = t  # the last time the level and the hours were normal
        direction = opened_day or opened_hours
        if direction is None or was_open:
            return []  # nothing new, or the other view has already said so: one incident, one alarm
        channel = "day" if opened_day else "hours"
        return [self._alert(ctx.key, event, source, level, z, direction, st.get("normal_t"), channel)]

    def _alert(self, device: str, event: dict[str, Any], source: Source, level: TrailingLevel, z: float,
               direction: str, normal_t: float | None, channel: str) -> Alert:
        lim, t = self.limits, event["_t"]
        now = level.level()
        kind = event.get("device_kind", "device")
        hours = level.scored  # the last completed hours against their normals: [bucket, z, mean, normal, sd]
        hour_level = sum(h[2] for h in hours) / len(hours) if hours else None
        hour_normal = sum(h[3] for h in hours) / len(hours) if hours else None
        hour_sd = hours[-1][4] if hours else None
        if channel == "day":
            reason = (f"{kind} {device} at {event['facility_id']}: mean {now:.2f} °C over the last {lim.span_hours:g} h "
                      f"against a normal of {level.mean:.2f} ± {level.sd:.2f} °C ({abs(z):.1f} standard deviations; "
                      f"alarm at {lim.z_on:g})")
        else:
            reason = (f"{kind} {device} at {event['facility_id']}: the last {len(hours)} hours averaged "
                      f"{hour_level:.2f} °C against {hour_normal:.2f} ± {hour_sd:.2f} °C usual for those hours of the day "
                      f"({abs(level.rhythm_z):.1f} standard deviations; alarm at {lim.z_on / lim.rhythm_weight:g}): "
                      f"its daily rhythm changed")
        return Alert.build(
            detector=self.name, version=self.version, key=f"{device}@{t}",
            stream=self.stream, severity="medium", tier="safety", entity_kind="device", entity_id=device,
            institution_id=event["facility_id"], region=event.get("region", "unknown"), event_t=t,
            score=abs(z) / lim.z_on, reason=reason,
            numbers={"direction": direction, "channel": channel, "level_c": round(now, 3),
                     "normal_c": round(level.mean, 3), "sd_c": round(level.sd, 3), "z": round(z, 2),
                     "span_hours": lim.span_hours,
                     "hours_level_c": None if hour_level is None else round(hour_level, 3),
                     "hours_normal_c": None if hour_normal is None else round(hour_normal, 3),
                     "hours_sd_c": None if hour_sd is None else round(hour_sd, 3),
                     "hours_z": round(level.rhythm_z, 2),
                     # the last day hour by hour against each hour's normal: the board draws it
                     "trace": level.trace(),
                     "normal_since": iso(normal_t) if normal_t else None,
                     "hours_since_normal": round((t - normal_t) / 3600, 1) if normal_t else None},
            evidence=[source],
        )
