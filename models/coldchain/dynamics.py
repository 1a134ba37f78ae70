"""Abnormal temperature dynamics 温度异常趋势: a fridge drifting away from its own normal before it fails.

A compressor that is wearing out, a door seal that leaks or a thermostat that creeps shows as
the unit's mean temperature moving away from what it has been for days — while every reading
is still inside 2–8 °C, so no excursion rule can see it. Each device's readings are averaged
per period (a day by default: door openings in working hours make hours unlike each other,
days much less); two CUSUM charts (:mod:`models.anomaly.cusum`), one for a rise and one for a
fall, compare each period with the mean and spread learned from the device's own past periods
(``memory_periods``, learned only while in control). An alert opens when either chart's
evidence crosses ``threshold`` — once per episode. The entity is the device.

>>> import math, random
>>> from models.alert import Source
>>> from models.runtime import Runtime
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
>>> a.numbers["direction"], a.numbers["periods"]
('rise', 3)
>>> print(a.reason)   # doctest: +ELLIPSIS
fridge FR-1 at CDC-1: mean ... °C over 24 h against a normal of 5.0... ± 0.10 °C; evidence of a rise ... over 3 periods (threshold 5)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.alert import Alert, Source
from models.anomaly.cusum import Episode, GaussianCUSUM
from models.detector import Context, KeyedDetector


@dataclass(frozen=True)
class DynamicsLimits:
    """Configuration ``[coldchain.abnormal_dynamics]``."""

    threshold: float = 5.0
    slack_sd: float = 0.5
    period_hours: float = 24.0
    memory_periods: float = 7.0  # how far back the normal reaches
    warmup_periods: int = 3
    min_sd_c: float = 0.1  # a mean steadier than this is still not a tenth of a degree away


class DynamicsDetector(KeyedDetector):
    name = "coldchain.abnormal_dynamics"
    version = "1"
    stream = "telemetry"
    Limits = DynamicsLimits  # its configuration section [coldchain.abnormal_dynamics]
    key = "device"
    key_field = "device_id"
    #: a unit switched off for a month has been moved or serviced: its old normal is not worth keeping
    retention_s = 30 * 86400.0

    def _chart(self, direction: str) -> Episode:
        lim = self.limits
        chart = GaussianCUSUM(direction, k=lim.slack_sd, fading_factor=1 / lim.memory_periods,
                              warmup=lim.warmup_periods, min_rel_sd=0.0, learn_below=lim.threshold / 2,
                              min_sd=lim.min_sd_c)
        return Episode(chart, lim.threshold)

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        t, temp = event["_t"], event["temperature_c"]
        period = int(t // (self.limits.period_hours * 3600))
        u = ctx.state
        if not u:
            u.update(period=period, total=temp, count=1, facility=event["facility_id"],
                     kind=event.get("device_kind", "device"), region=event.get("region", "unknown"),
                     first=list(source), up=None, down=None, periods_up=0, periods_down=0)
            return []
        if period < u["period"]:
            return []  # a late or redelivered reading of a period already judged
        if period == u["period"]:
            u["total"] += temp
            u["count"] += 1
            return []
        alerts = self._judge(ctx.key, u, u["total"] / u["count"], t)
        u.update(period=period, total=temp, count=1, first=list(source))
        return alerts

    def _judge(self, device: str, u: dict[str, Any], mean: float, now: float) -> list[Alert]:
        up, down = self._chart("up").load(u["up"]), self._chart("down").load(u["down"])
        normal, sd = up.chart.mean, up.chart.sd
        x = {"y": mean}
        rose, fell = up.observe(x), down.observe(x)
        u["up"], u["down"] = up.dump(), down.dump()
        u["periods_up"] = u["periods_up"] + 1 if up.chart.statistic > 0 else 0
        u["periods_down"] = u["periods_down"] + 1 if down.chart.statistic > 0 else 0
        if not (rose or fell):
            return []
        direction = "rise" if rose else "fall"
        evidence = (up if rose else down).chart.statistic
        periods = u["periods_up"] if rose else u["periods_down"]
        reason = (f"{u['kind']} {device} at {u['facility']}: mean {mean:.2f} °C over {self.limits.period_hours:g} h "
                  f"against a normal of {normal:.2f} ± {sd:.2f} °C; evidence of a {direction} {evidence:.1f} over "
                  f"{periods} periods (threshold {self.limits.threshold:g})")
        return [Alert.build(
            detector=self.name, version=self.version, key=f"{device}@{u['period']}",
            stream=self.stream, severity="medium", tier="safety", entity_kind="device", entity_id=device,
            institution_id=u["facility"], region=u["region"], event_t=now, score=evidence / self.limits.threshold,
            reason=reason,
            numbers={"direction": direction, "mean_c": round(mean, 3), "normal_c": round(normal, 3),
                     "sd_c": round(sd, 3), "evidence": round(evidence, 2), "periods": periods,
                     "period_hours": self.limits.period_hours},
            evidence=[Source(*u["first"])],
        )]
