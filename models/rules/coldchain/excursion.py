"""Temperature excursions 温度超标 of vaccine fridges, cold rooms and vehicles.

An *excursion* is one period a device spends out of the 2–8 °C storage range, with a
start, an end, a peak and a duration — not one alert per reading. The detector raises:

* ``coldchain.excursion`` when an excursion opens (status ``open``) and the same alert
  id again when it ends (status ``closed``, with end, peak and duration);
* an excursion also ends at its last reading when the next comes after more than ``max_gap_minutes``
  (what happened in between is unknown; the silence has its own rule);
* ``coldchain.breach`` when an alarm rule of the loggers (WHO PQS E006) is met, ``numbers.rule`` naming it:

  - ``heat_single``: above +8 °C continuously for 10 h (30 min is a stricter local option), once
    per excursion;
  - ``freeze_single``: at or below −0.5 °C for 60 min (freezing destroys adsorbed vaccines), once
    per excursion;
  - ``severe_heat``: at or above +45 °C continuously for 1 h (the shipping indicators' single event);
  - ``heat_cumulative``: above +8 °C for 10 h in all within any 24 h (the 30-day recorder's
    cumulative alarm; several short excursions add up), unless a single-event heat breach
    already alarmed within that window; once per window.

Every excursion and breach alert carries the minutes out of range of the local calendar day of its
reading so far (``day``, ``day_minutes``: heat, freeze) — the figure a logger's daily history shows —
and the breach its own duration. Time between two readings counts as the earlier reading's: above,
below or in range (a gap longer than ``max_gap_minutes`` counts as nothing). A single-event rule measures
from where the straight line between the last reading in range and the first out of it crosses the limit,
to now or to where it crosses back: a logger measures every minute and logs every 5–15, and the
crossing is the best estimate of when its own count started and ended. A rule set to 0 minutes is off.

Excursions and breaches are kept apart, as mSupply's users asked.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([ExcursionDetector(ExcursionLimits(heat_breach_minutes=30))])
>>> def reading(minute, temp):
...     e = {"device_id": "F1", "device_kind": "fridge", "facility_id": "CDC-1", "region": "310101",
...          "temperature_c": temp, "_t": 1767225600.0 + 60 * minute, "event_time": "2026-01-01T00:00:00+00:00"}
...     return d.process(e, Source("zhijian.telemetry", 0, minute, f"F1@{minute}"))
>>> reading(0, 5.0)
[]
>>> [(a.detector, a.status) for a in reading(5, 9.5)]
[('coldchain.excursion', 'open')]
>>> [(a.detector, a.numbers["duration_minutes"]) for a in reading(35, 11.0)]   # from 8 °C crossed at 3.3 min
[('coldchain.breach', 31.7)]
>>> closed = reading(50, 6.0)[0]
>>> closed.status, closed.numbers["peak_c"], closed.numbers["duration_minutes"], closed.numbers["day_minutes"]
('closed', 11.0, 45.0, {'heat': 45.0, 'freeze': 0.0})
>>> d = Runtime([ExcursionDetector(ExcursionLimits(heat_breach_minutes=60, heat_cumulative_minutes=120))])
>>> spells = [(0, 9.0), (50, 5.0), (120, 9.0), (170, 5.0), (240, 9.0), (290, 5.0)]  # 3 × 50 min warm in 5 h
>>> alerts = [a for minute, temp in spells for a in reading(minute, temp)]
>>> [(a.numbers["rule"], a.numbers["window_minutes"]) for a in alerts if a.detector == "coldchain.breach"]
[('heat_cumulative', 150.0)]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.contracts.alert import Alert, Source, iso
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class ExcursionLimits:
    """Alarm limits; every value is configuration (``[coldchain.excursion]``)."""

    heat_above_c: float = 8.0
    heat_breach_minutes: float = 600.0  # single event: WHO 30-day recorder; Fridge-tag 2 "t AL: 600"
    freeze_at_or_below_c: float = -0.5
    freeze_breach_minutes: float = 60.0  # single event, WHO PQS E006
    severe_heat_at_or_above_c: float = 45.0  # WHO shipping indicators: ≥ +45 °C for 1 h, single event
    severe_heat_minutes: float = 60.0
    # cumulative heat: the minutes above heat_above_c add up within any window of this many hours; 10 h is the
    # WHO 30-day recorder's heat alarm, a day the span of the loggers' daily history
    heat_cumulative_minutes: float = 600.0
    heat_cumulative_window_hours: float = 24.0
    # A gap between readings longer than this ends an open excursion at its last reading: what happened in the
    # gap is unknown (sensor silence has its own rule). Two hours: loggers record every 5–60 minutes.
    max_gap_minutes: float = 120.0


#: Lots listed in an alert, at most (the count and the doses cover them all).
MAX_LOTS_LISTED = 50


def affected_stock(alert: Alert, stock: dict[str, Any]) -> None:
    """Name the vaccine lots in the device (受影响疫苗批号): the last stock count the worker has for it
    (``zhijian.inventory``). Freezing destroys only freeze-sensitive vaccines: in a freeze the doses at
    risk leave out lots known not to be.

    >>> from models.contracts.alert import Source
    >>> a = Alert.build(detector="coldchain.excursion", version="1", key="k", stream="telemetry", severity="high",
    ...                 tier="safety", entity_kind="device", entity_id="F1", institution_id="C", region="r",
    ...                 event_t=0.0, score=1.0, reason="fridge F1 at C: -1.5 °C", numbers={"kind": "freeze"},
    ...                 evidence=[Source("t", 0, 0, "e")])
    >>> affected_stock(a, {"event_time": "2026-11-24T08:00:00+08:00", "lots": [
    ...     {"lot": "A17", "product_code": "HEPB-10", "doses": 400, "freeze_sensitive": True},
    ...     {"lot": "M02", "product_code": "MMR-1", "doses": 120, "freeze_sensitive": False}]})
    >>> a.numbers["stock"]["doses"], a.numbers["stock"]["doses_at_risk"], a.reason
    (520, 400, 'fridge F1 at C: -1.5 °C; stock counted 2026-11-24T08:00:00+08:00: 2 lots, 400 of 520 doses at risk')
    """
    lots = stock.get("lots") or []
    if not lots:
        return
    freeze = alert.numbers.get("kind") == "freeze"
    doses = sum(lot["doses"] for lot in lots)
    at_risk = sum(lot["doses"] for lot in lots if not (freeze and lot.get("freeze_sensitive") is False))
    alert.numbers["stock"] = {
        "as_of": stock.get("event_time"), "lots": len(lots), "doses": doses, "doses_at_risk": at_risk,
        "listed": [{k: lot[k] for k in ("lot", "product_code", "doses", "expiry", "freeze_sensitive") if k in lot}
                   for lot in lots[:MAX_LOTS_LISTED]],
    }
    alert.reason += (f"; stock counted {stock.get('event_time')}: {len(lots)} lot{'s' if len(lots) > 1 else ''}, "
                     + (f"{at_risk} of {doses} doses at risk" if at_risk != doses else f"{doses} doses at risk"))


#: readings before an excursion its trace keeps, and the most readings a trace holds (past it, the readings after
#: the first TRACE_BEFORE + a few are thinned to every other one)
TRACE_BEFORE, TRACE_MAX = 12, 120


def _traced(exc: dict[str, Any], t: float, temp: float) -> None:
    """Add a reading to an excursion's trace, thinning the trace when it grows past TRACE_MAX.

    >>> exc = {"trace": [[float(i), 5.0] for i in range(TRACE_MAX)]}
    >>> _traced(exc, 999.0, 9.0); len(exc["trace"]) <= TRACE_MAX, exc["trace"][-1]
    (True, [999.0, 9.0])
    """
    trace = exc.setdefault("trace", [])
    trace.append([t, temp])
    if len(trace) > TRACE_MAX:
        head = TRACE_BEFORE + 4
        exc["trace"] = trace[:head] + trace[head:-1:2] + trace[-1:]


class _Excursion:
    """A view of the excursion kept in the device's state (a dict of JSON values)."""

    __slots__ = ("d",)

    def __init__(self, d: dict[str, Any]) -> None:
        self.d = d

    kind = property(lambda self: self.d["kind"])
    start_t = property(lambda self: self.d["start_t"])
    start_source = property(lambda self: Source(*self.d["start_source"]))
    peak = property(lambda self: self.d["peak"])
    readings = property(lambda self: self.d["readings"])
    breached = property(lambda self: self.d["breached"])


class ExcursionDetector(KeyedDetector):
    name = "coldchain.excursion"
    raised_after_evidence = True  # an open excursion's alert names its first reading, raised by a later one
    version = "1"
    stream = "telemetry"
    Limits = ExcursionLimits  # its configuration section [coldchain.excursion]
    key, key_field = "device", "device_id"
    retention_s = 30 * 86400.0  # a device silent for 30 days is forgotten, open excursion included

    def _kind(self, temp: float) -> str | None:
        if temp > self.limits.heat_above_c:
            return "heat"
        if temp <= self.limits.freeze_at_or_below_c:
            return "freeze"
        return None

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        if event["_t"] <= ctx.state.get("last_t", event["_t"] - 1):  # redelivered or late: already accounted for
            return []
        alerts = self._excursion(ctx.state, event, source)
        recent = ctx.state.setdefault("recent", [])  # the last readings: an excursion's trace starts with them
        recent.append([event["_t"], event["temperature_c"]])
        del recent[:-TRACE_BEFORE]
        alerts += self._cumulative(event, ctx.state, source)  # after a single-event breach of this reading
        stock = ctx.reference.get("inventory", {}).get(ctx.key) if alerts else None
        if stock:
            for a in alerts:
                affected_stock(a, stock)
        return alerts

    def _excursion(self, st: dict[str, Any], event: dict[str, Any], source: Source) -> list[Alert]:
        t, temp = event["_t"], event["temperature_c"]
        previous_t = st.get("last_t")
        st["last_t"] = t
        kind = self._kind(temp)
        previous_kind = st.get("last_kind")
        st["last_kind"] = kind
        previous_temp = st.get("last_temp")
        st["last_temp"] = temp
        near = previous_t is not None and previous_temp is not None and t - previous_t <= self.limits.max_gap_minutes * 60
        self._account(st, event, previous_t, previous_kind)
        exc = st.get("excursion")
        alerts: list[Alert] = []
        if exc is not None and previous_t is not None and t - previous_t > self.limits.max_gap_minutes * 60:
            # the device was not heard for longer than the gap limit: the excursion ends where it was last seen
            last = exc.get("last_source") or exc["start_source"]
            alerts.append(self._alert(event, _Excursion(exc), end_t=exc["last_t"], end_source=Source(*last),
                                      gap_minutes=(t - previous_t) / 60, day=self._day(st)))
            st["excursion"] = exc = None
        if exc is not None and exc["kind"] != kind:
            # the time up to this reading was still the excursion's: a rule it met by now alarms before it closes
            # the condition ended between the last reading and this one: where the line between them crosses
            # the limit is the best estimate of when
            ended = self._crossing(exc["kind"], exc["last_t"], previous_temp, t, temp) if near else t
            alerts += self._single(st, event, exc, source, ended)
            alerts += self._severe(event, exc, source)
            _traced(exc, t, temp)  # the reading back in range closes the trace
            alerts.append(self._alert(event, _Excursion(exc), end_t=t, end_source=source, day=self._day(st)))
            st["excursion"] = exc = None
        if kind is None:
            return alerts
        if exc is None:
            exc = st["excursion"] = {"kind": kind, "start_t": t, "start_source": list(source), "peak": temp,
                                     "last_t": t, "readings": 1, "breached": False,
                                     "cross_t": self._crossing(kind, previous_t, previous_temp, t, temp) if near else t,
                                     "trace": [list(r) for r in st.get("recent", []) if r[0] < t] + [[t, temp]]}
            alerts.append(self._alert(event, _Excursion(exc), day=self._day(st)))
            alerts += self._severe(event, exc, source)
            return alerts
        exc["last_t"] = t
        exc["last_source"] = list(source)
        exc["readings"] += 1
        exc["peak"] = max(exc["peak"], temp) if kind == "heat" else min(exc["peak"], temp)
        _traced(exc, t, temp)
        alerts += self._single(st, event, exc, source)
        alerts += self._severe(event, exc, source)
        return alerts

    def _crossing(self, kind: str, t0: float, temp0: float, t1: float, temp1: float) -> float:
        """When the straight line between two readings crosses the limit of ``kind`` (one reading in, one out)."""
        limit = self.limits.heat_above_c if kind == "heat" else self.limits.freeze_at_or_below_c
        if temp1 == temp0:
            return t1
        return t0 + (t1 - t0) * min(1.0, max(0.0, (limit - temp0) / (temp1 - temp0)))

    def _single(self, st: dict[str, Any], event: dict[str, Any], exc: dict[str, Any], source: Source,
                ended: float | None = None) -> list[Alert]:
        """The single-event rule of the excursion's kind, once it has lasted the limit: from the estimated
        crossing into the range to now, or to the estimated crossing out of it (``ended``)."""
        kind, t = exc["kind"], event["_t"]
        limit = self.limits.heat_breach_minutes if kind == "heat" else self.limits.freeze_breach_minutes
        minutes = ((ended if ended is not None else t) - exc.get("cross_t", exc["start_t"])) / 60.0
        if not limit or exc["breached"] or minutes < limit:
            return []
        exc["breached"] = True
        if kind == "heat":
            st.setdefault("cumulative", {})["alarmed_t"] = t  # the single event explains the window's heat
        return [self._breach(event, _Excursion(exc), minutes, limit, source, f"{kind}_single", self._day(st))]

    def _account(self, st: dict[str, Any], event: dict[str, Any], previous_t: float | None,
                 previous_kind: str | None) -> None:
        """Add the time since the previous reading to its kind's minutes: of the day, and of the heat window."""
        t, day = event["_t"], str(event.get("event_time", ""))[:10]
        kept = st.get("day")
        if kept is None or kept[0] != day:
            kept = st["day"] = [day, 0.0, 0.0]  # a new local calendar day of the device's readings
        if previous_t is not None and t - previous_t <= self.limits.max_gap_minutes * 60 and previous_kind:
            minutes = (t - previous_t) / 60.0
            kept[1 if previous_kind == "heat" else 2] += minutes  # counted on the day of the reading ending it
            if previous_kind == "heat" and self.limits.heat_cumulative_minutes:
                spans = st.setdefault("cumulative", {}).setdefault("spans", [])
                if spans and spans[-1][1] == previous_t:
                    spans[-1][1] = t
                else:
                    spans.append([previous_t, t])
        cum = st.get("cumulative")
        if cum is not None:  # forget spans out of the window
            since = t - self.limits.heat_cumulative_window_hours * 3600
            cum["spans"] = [sp for sp in cum.get("spans", []) if sp[1] > since]
            if not cum["spans"] and (cum.get("alarmed_t") or since) <= since:
                del st["cumulative"]

    def _window_minutes(self, st: dict[str, Any], t: float) -> float:
        since = t - self.limits.heat_cumulative_window_hours * 3600
        return sum(e - max(s, since) for s, e in st.get("cumulative", {}).get("spans", []) if e > since) / 60.0

    def _cumulative(self, event: dict[str, Any], st: dict[str, Any], source: Source) -> list[Alert]:
        limit = self.limits.heat_cumulative_minutes
        cum = st.get("cumulative")
        if not limit or cum is None:
            return []
        t = event["_t"]
        window_s = self.limits.heat_cumulative_window_hours * 3600
        if cum.get("alarmed_t") is not None and cum["alarmed_t"] > t - window_s:
            return []  # this window has alarmed (or a single-event breach explains it)
        minutes = self._window_minutes(st, t)
        if minutes < limit:
            return []
        cum["alarmed_t"] = t
        first = cum["spans"][0][0]
        where = f"above {self.limits.heat_above_c:g} °C"
        reason = (f"{event.get('device_kind', 'device')} {event['device_id']} at {event['facility_id']}: "
                  f"{minutes:.0f} min {where} in all within {self.limits.heat_cumulative_window_hours:g} h "
                  f"(cumulative alarm limit {limit:g} min)")
        numbers = {"rule": "heat_cumulative", "kind": "heat", "limit_c": self.limits.heat_above_c,
                   "window_start": iso(max(first, t - window_s)), "window_minutes": round(minutes, 1),
                   "limit_minutes": limit, "window_hours": self.limits.heat_cumulative_window_hours,
                   **self._day(st)}
        return [Alert.build(detector="coldchain.breach", version=self.version, key=f"heat_cumulative@{t}",
                            severity="high", score=minutes / limit, reason=reason, numbers=numbers, evidence=[source],
                            **self._common(event, t))]

    def _severe(self, event: dict[str, Any], exc: dict[str, Any], source: Source) -> list[Alert]:
        """≥ +45 °C held for the severe-heat minutes: once per run of such readings."""
        lim = self.limits
        if exc["kind"] != "heat" or not lim.severe_heat_minutes:
            return []
        hot = event["temperature_c"] >= lim.severe_heat_at_or_above_c
        severe = exc.get("severe")
        if severe is None:
            if hot:
                exc["severe"] = {"since": event["_t"], "source": list(source), "alarmed": False}
            return []
        if not hot:
            del exc["severe"]  # the run ends at this reading: the time up to it was the earlier reading's
        minutes = (event["_t"] - severe["since"]) / 60.0
        if severe["alarmed"] or minutes < lim.severe_heat_minutes:
            return []
        severe["alarmed"] = True
        reason = (f"{event.get('device_kind', 'device')} {event['device_id']} at {event['facility_id']}: "
                  f"{minutes:.0f} min at or above {lim.severe_heat_at_or_above_c:g} °C "
                  f"(alarm limit {lim.severe_heat_minutes:g} min), peak {exc['peak']:.1f} °C")
        return [Alert.build(detector="coldchain.breach", version=self.version, key=f"severe_heat@{severe['since']}",
                            severity="critical", score=minutes / lim.severe_heat_minutes, reason=reason,
                            numbers={"rule": "severe_heat", "kind": "heat", "limit_c": lim.severe_heat_at_or_above_c,
                                     "peak_c": exc["peak"], "start": iso(severe["since"]),
                                     "duration_minutes": round(minutes, 1), "limit_minutes": lim.severe_heat_minutes},
                            evidence=[Source(*severe["source"]), source], **self._common(event, event["_t"]))]

    @staticmethod
    def _day(st: dict[str, Any]) -> dict[str, Any]:
        day, heat, freeze = st.get("day") or ["", 0.0, 0.0]
        return {"day": day, "day_minutes": {"heat": round(heat, 1), "freeze": round(freeze, 1)}}

    def _describe(self, event: dict[str, Any], exc: _Excursion) -> tuple[str, float, str]:
        if exc.kind == "heat":
            return f"above {self.limits.heat_above_c:g} °C", self.limits.heat_above_c, "medium"
        return f"at or below {self.limits.freeze_at_or_below_c:g} °C", self.limits.freeze_at_or_below_c, "high"

    def _common(self, event: dict[str, Any], event_t: float) -> dict[str, Any]:
        """The fields every alert of the device shares; ``event_t`` the time it is about."""
        return {
            "stream": self.stream,
            "tier": "safety",
            "entity_kind": "device",
            "entity_id": event["device_id"],
            "institution_id": event["facility_id"],
            "region": event.get("region", "unknown"),
            "event_t": event_t,
        }

    def _alert(self, event: dict[str, Any], exc: _Excursion, end_t: float | None = None,
               end_source: Source | None = None, gap_minutes: float | None = None,
               day: dict[str, Any] | None = None) -> Alert:
        where, limit, severity = self._describe(event, exc)
        numbers: dict[str, Any] = {"kind": exc.kind, "limit_c": limit, "peak_c": exc.peak,
                                   "start": iso(exc.start_t), "readings": exc.readings, **(day or {})}
        if exc.d.get("trace"):  # the readings around it, for the operator's chart (epoch seconds, °C)
            numbers["trace"] = {"t": [round(r[0]) for r in exc.d["trace"]], "c": [r[1] for r in exc.d["trace"]],
                                "low_c": self.limits.freeze_at_or_below_c, "high_c": self.limits.heat_above_c}
        evidence = [exc.start_source]
        kind_name = event.get("device_kind", "device")
        if end_t is None:
            status = "open"
            reason = (f"{kind_name} {event['device_id']} at {event['facility_id']}: {exc.peak:.1f} °C, "
                      f"{where} since {iso(exc.start_t)}")
        else:
            status = "closed"
            minutes = (end_t - exc.start_t) / 60.0
            numbers.update(end=iso(end_t), duration_minutes=round(minutes, 1), breached=exc.breached)
            if gap_minutes is not None:
                numbers["ended_by_gap_minutes"] = round(gap_minutes, 1)
            evidence = [exc.start_source, end_source] if end_source else evidence
            reason = (f"{kind_name} {event['device_id']} at {event['facility_id']}: excursion {where} "
                      f"ended after {minutes:.0f} min, peak {exc.peak:.1f} °C")
        score = abs(exc.peak - limit) + 1.0
        return Alert.build(detector=self.name, version=self.version, key=f"{exc.kind}@{exc.start_t}",
                           severity=severity, score=score, reason=reason, numbers=numbers,
                           evidence=evidence, status=status, **self._common(event, exc.start_t))

    def _breach(self, event: dict[str, Any], exc: _Excursion, minutes: float, limit_minutes: float,
                source: Source, rule: str, day: dict[str, Any]) -> Alert:
        where, limit, _ = self._describe(event, exc)
        severity = "high" if exc.kind == "heat" else "critical"
        reason = (f"{event.get('device_kind', 'device')} {event['device_id']} at {event['facility_id']}: "
                  f"{minutes:.0f} min {where} (alarm limit {limit_minutes:g} min), peak {exc.peak:.1f} °C")
        numbers = {"rule": rule, "kind": exc.kind, "limit_c": limit, "peak_c": exc.peak, "start": iso(exc.start_t),
                   "duration_minutes": round(minutes, 1), "limit_minutes": limit_minutes, **day}
        return Alert.build(detector="coldchain.breach", version=self.version, key=f"{exc.kind}@{exc.start_t}",
                           severity=severity, score=minutes / limit_minutes, reason=reason, numbers=numbers,
                           evidence=[exc.start_source, source],
                           **self._common(event, event["_t"]))
