"""The runtime of keyed detectors for one task (one Kafka partition): the state store, the
event-time watermark, the timers, expiry, snapshots and the changes since the last checkpoint.

Keys, timers and time belong here, not to each detector (:mod:`models.engine.detector`). The watermark
of a task is the newest event time it has seen; a timer fires once the watermark is past it,
after the event that moved the watermark. A key's state is dropped when it becomes empty with no
timer pending, or when it has not been touched for the detector's ``retention_s`` of event time.

>>> from models.contracts.alert import Source
>>> from models.engine.detector import KeyedDetector
>>> class Silence(KeyedDetector):                     # alert when a device says nothing for an hour
...     name, version, stream, key, key_field, Limits = "demo.silence", "1", "telemetry", "device", "device_id", dict
...     def process(self, ctx, event, source):
...         ctx.state["last"] = event["_t"]
...         ctx.set_timer(event["_t"] + 3600)
...         return []
...     def on_timer(self, ctx, tag, t):
...         ctx.state.clear()
...         return [f"{ctx.key} silent since {t - 3600:.0f}"]
>>> rt = Runtime([Silence()])
>>> def reading(device, t, offset):
...     return rt.process({"device_id": device, "_t": t}, Source("zhijian.telemetry", 0, offset, f"{device}@{t}"))
>>> reading("F1", 0.0, 0), reading("F2", 1800.0, 1)
([], [])
>>> reading("F2", 4000.0, 2)                          # the watermark passes F1's timer
['F1 silent since 0']
>>> snap = rt.snapshot(); again = Runtime([Silence()]); again.restore(snap)
>>> again.advance(9000.0) == rt.advance(9000.0) == ['F2 silent since 4000']
True
"""
from __future__ import annotations

import heapq
import itertools
import logging
from typing import Any, Callable, Iterable, Mapping

import orjson

from models.contracts.alert import Alert, Source
from models.engine.detector import EMPTY, Context, KeyedDetector
from models.engine.flood import AlertCap

log = logging.getLogger(__name__)

#: How often (event time) idle keys are looked for: a sweep visits every key, so not too often; the
#: shortest retention is days, so six hours of overshoot is a small share of it.
SWEEP_EVERY_S = 6 * 3600.0
#: Set on an event that must not move its partition's watermark: judged like any other, but an outlier in time
#: until later events confirm it (``streams.worker.ingest.PartitionClock``). The runtime and the re-keying forwarder
#: honour it.
HOLD_CLOCK = "_hold"

#: The changelog name of a runtime's own record (its watermark and :attr:`Runtime.meta`).
META = "_runtime"


def _json_t(t: float) -> float | None:
    """JSON has no infinity: "before any event" travels as null."""
    return None if t == float("-inf") else t


def _t(value: float | None) -> float:
    return float("-inf") if value is None else value


class DetectorFailure(Exception):
    """A detector raised on an event: the runtime carries on with the others and reports it."""

    def __init__(self, detector: str, error: BaseException) -> None:
        super().__init__(f"{detector}: {type(error).__name__}: {error}")
        self.detector = detector
        self.error = error


class _Entry:
    """One key's state and timers. Once checkpointed, a state rests as its JSON text until it is next
    used: a few hundred bytes instead of Python objects several times that size (``zhijian bench
    --entities``); a key with no timer keeps none."""

    __slots__ = ("_state", "_timers", "seen")

    def __init__(self, state: dict[str, Any] | str | None = None, timers: dict[str, float] | None = None,
                 seen: float = float("-inf")) -> None:
        self._state: dict[str, Any] | str = state or ""
        self._timers = timers or None
        self.seen = seen

    @property
    def state(self) -> dict[str, Any]:
        """The state, decoded for use (it rests again at :meth:`rest`)."""
        s = self._state
        if type(s) is str:
            s = self._state = orjson.loads(s) if s else {}
        return s  # type: ignore[return-value]

    @property
    def timers(self) -> dict[str, float]:
        if self._timers is None:
            self._timers = {}
        return self._timers

    def rest(self) -> None:
        s = self._state
        if type(s) is not str:
            # as str: orjson's bytes keep the whole 4 KiB buffer they were written in; decode() copies them tight
            self._state = orjson.dumps(s).decode() if s else ""
        if not self._timers:
            self._timers = None

    def value(self) -> tuple[dict[str, Any], dict[str, float]]:
        """State and timers as JSON values, leaving the entry at rest."""
        s = self._state
        if type(s) is str:
            s = orjson.loads(s) if s else {}
        return s, self._timers or {}  # type: ignore[return-value]


class Runtime:
    """Runs keyed detectors over the events of one task."""

    def __init__(self, detectors: Iterable[KeyedDetector], external_watermark: bool = False,
                 cap: AlertCap | None = None, reference: Mapping[str, Mapping[str, Any]] = EMPTY) -> None:
        self.detectors = list(detectors)
        self.reference = reference  # read-only reference data handed to detectors (models.engine.detector)
        # the alert cap (models.engine.flood) keeps its entity-hours in the same store, checkpointed alike
        self._cap = len(self.detectors) if cap is not None else None
        if cap is not None:
            self.detectors.append(cap)
        # False: the watermark is the newest event time seen (an input partition, read in order);
        # True: the caller moves it with advance() (a repartition partition: the slowest source's)
        self.external_watermark = external_watermark
        self.meta: dict[str, Any] = {}  # the caller's own JSON values, checkpointed with the state
        self._meta_dirty = False
        self.by_name = {d.name: i for i, d in enumerate(self.detectors)}
        self._retention = [d.retention_s for d in self.detectors]
        self._stateless = Context("", {}, float("-inf"), {}, reference)
        self.watermark = float("-inf")
        self.failures: list[DetectorFailure] = []  # of the last call; the caller reads and clears
        self._store: dict[tuple[int, str], _Entry] = {}
        self._heap: list[tuple[float, int, int, str, str]] = []
        self._seq = itertools.count()
        self._dirty: set[tuple[int, str]] = set()
        self._next_sweep = float("-inf")

    # -- processing

    def process(self, event: dict[str, Any], source: Source) -> list[Alert]:
        """Hand one event to every detector that has a key for it, then fire what its time made due."""
        alerts: list[Alert] = []
        t = event["_t"]
        for i, detector in enumerate(self.detectors):
            try:
                if detector.key is None:  # it keeps no state: judges the event alone
                    self._stateless.watermark = self.watermark
                    alerts += detector.process(self._stateless, event, source) or []
                    continue
                key = detector.key_of(event)
                if key is None:
                    continue
                entry, ctx, existed = self._enter(i, key, t)
                alerts += detector.process(ctx, event, source) or []
                self._settle(i, key, entry, ctx, existed)
            except Exception as e:  # a detector bug must not stop the others, nor the stream
                self.failures.append(DetectorFailure(detector.name, e))
        if not self.external_watermark and not event.get(HOLD_CLOCK):
            alerts += self._advance(t)
        return self._capped(alerts)

    def advance(self, t: float) -> list[Alert]:
        """Move the watermark to ``t`` (never back) and fire the timers it passes, in time order."""
        return self._capped(self._advance(t))

    def _enter(self, i: int, key: str, t: float) -> tuple[_Entry, Context, bool]:
        """The entry of detector ``i`` under ``key`` (made when new), touched at event time ``t``; the context a
        call on it gets; and whether it held anything before the call."""
        entry = self._store.get((i, key))
        if entry is None:
            entry = self._store[(i, key)] = _Entry()
        if t > entry.seen:
            entry.seen = t
        existed = bool(entry.state or entry.timers)
        return entry, Context(key, entry.state, self.watermark, entry.timers, self.reference), existed

    def _capped(self, alerts: list[Alert]) -> list[Alert]:
        """The alerts the cap lets through, and its summaries (see :mod:`models.engine.flood`)."""
        if self._cap is None or not alerts:
            return alerts
        i, out = self._cap, []
        cap: AlertCap = self.detectors[i]  # type: ignore[assignment]
        for alert in alerts:
            if alert.detector == cap.name:  # its own summary, closed by its timer
                out.append(alert)
                continue
            key = cap.key_for(alert)
            entry, ctx, existed = self._enter(i, key, alert.event_t)
            try:
                out += cap.admit(ctx, alert)
            except Exception as e:  # the cap must never lose an alert
                self.failures.append(DetectorFailure(cap.name, e))
                out.append(alert)
            self._settle(i, key, entry, ctx, existed)
        return out

    def _advance(self, t: float) -> list[Alert]:
        alerts: list[Alert] = []
        if t <= self.watermark:
            return alerts
        self.watermark = t
        while self._heap and self._heap[0][0] < t:
            due, _, i, key, tag = heapq.heappop(self._heap)
            entry = self._store.get((i, key))
            if entry is None or (entry._timers or {}).get(tag) != due:
                continue  # cancelled, moved, or its key expired
            del entry.timers[tag]
            detector = self.detectors[i]
            try:
                ctx = Context(key, entry.state, self.watermark, entry.timers, self.reference)
                alerts += detector.on_timer(ctx, tag, due) or []
                self._settle(i, key, entry, ctx, True)
            except Exception as e:
                self.failures.append(DetectorFailure(detector.name, e))
        if t >= self._next_sweep:
            self._next_sweep = t + SWEEP_EVERY_S
            self.expire()
        return alerts

    def _settle(self, i: int, key: str, entry: _Entry, ctx: Context, existed: bool) -> None:
        """After a call: schedule the timers it set, drop an empty key, note what changed."""
        for tag, due in ctx.set_now:
            if entry.timers.get(tag) == due:
                heapq.heappush(self._heap, (due, next(self._seq), i, key, tag))
        if not entry.state and not entry.timers:
            self._store.pop((i, key), None)
            if not existed:
                return  # nothing was kept before or after: nothing to write
        self._dirty.add((i, key))

    # -- expiry

    def expire(self) -> int:
        """Drop keys idle past their detector's retention (event time) with no timer pending."""
        w, retention = self.watermark, self._retention
        dropped = [k for k, e in self._store.items() if not e._timers and e.seen < w - retention[k[0]]]
        for k in dropped:
            del self._store[k]
            self._dirty.add(k)
        return len(dropped)

    def __len__(self) -> int:
        return len(self._store)

    def store_of(self, detector: str, key: str) -> dict[str, Any] | None:
        """The state a detector keeps under a key (None: nothing kept)."""
        entry = self._store.get((self.by_name[detector], key))
        return None if entry is None else entry.state

    # -- snapshots and changelog

    def touch(self) -> None:
        """Note that :attr:`meta` changed: the next :meth:`changes` carries it."""
        self._meta_dirty = True

    def snapshot(self) -> dict[str, Any]:
        """Everything, as JSON values: restore() on another runtime continues exactly from here."""
        return {"watermark": _json_t(self.watermark), "next_sweep": _json_t(self._next_sweep),
                "meta": self.meta, "entries": [self._value(k, e) for k, e in self._store.items()]}

    def _value(self, k: tuple[int, str], e: _Entry) -> list[Any]:
        state, timers = e.value()
        return [self.detectors[k[0]].name, k[1], state, timers, _json_t(e.seen)]

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.watermark = _t(snapshot["watermark"])
        self._next_sweep = _t(snapshot.get("next_sweep"))
        self.meta = orjson.loads(orjson.dumps(snapshot.get("meta") or {}))  # its own copy: a snapshot may be restored again
        for value in snapshot["entries"]:
            self.put(value)

    def put(self, value: list[Any]) -> None:
        """Load one key's entry as :meth:`changes` gave it (a changelog record's value)."""
        name, key, state, timers, seen = value
        i = self.by_name.get(name)
        if i is None:
            log.warning("state of unknown detector %s ignored", name)
            return
        self._store[(i, key)] = _Entry(orjson.dumps(state).decode() if state else "", dict(timers), _t(seen))
        for tag, due in timers.items():
            heapq.heappush(self._heap, (due, next(self._seq), i, key, tag))

    def load(self, name: str, key: str, value: list[Any] | None) -> None:
        """Apply one changelog record: a key's entry, or its deletion (None), or the runtime's own."""
        if name == META:
            self.meta = dict(value["meta"]) if value else {}
            self.watermark = _t(value.get("watermark")) if value else float("-inf")
            self._next_sweep = _t(value.get("next_sweep")) if value else float("-inf")
        elif value is not None:
            self.put(value)
        elif name in self.by_name:
            self._store.pop((self.by_name[name], key), None)  # its heap entries die when popped

    def changes(self) -> list[tuple[str, str, list[Any] | None]]:
        """(detector, key, entry or None for a deleted key) of every key changed since the last call."""
        out: list[tuple[str, str, Any]] = []
        if self._meta_dirty:
            self._meta_dirty = False
            out.append((META, "", {"meta": self.meta, "watermark": _json_t(self.watermark),
                                   "next_sweep": _json_t(self._next_sweep)}))
        for k in self._dirty:
            e = self._store.get(k)
            if e is None:
                out.append((self.detectors[k[0]].name, k[1], None))
                continue
            e.rest()  # encoded once for the changelog, and kept so until the key is next used
            out.append((self.detectors[k[0]].name, k[1], [self.detectors[k[0]].name, k[1],
                                                          orjson.Fragment(e._state or "{}"), e._timers or {},
                                                          _json_t(e.seen)]))
        self._dirty.clear()
        return out


class PerPartition:
    """A store per owned partition, made on a partition's first use and dropped when the worker gives the
    partition up (its new owner restores it from the changelog)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self.tasks: dict[int, Any] = {}
        self.failures: list[DetectorFailure] = []  # of the calls since the caller last cleared it

    def task(self, partition: int) -> Any:
        t = self.tasks.get(partition)
        if t is None:
            t = self.tasks[partition] = self._make()
        return t

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget the state of partitions this worker no longer owns."""
        for p in partitions:
            self.tasks.pop(p, None)

    def __len__(self) -> int:
        return sum(len(t) for t in self.tasks.values())

    def _collect(self, runtime: "Runtime") -> None:
        if runtime.failures:
            self.failures += runtime.failures
            runtime.failures = []


class PartitionedRuntime(PerPartition):
    """One :class:`Runtime` per partition of a stream, as a worker owns partitions: a key's state
    lives in the runtime of the partition its events come from."""

    name = "runtime"

    def __init__(self, detectors: list[KeyedDetector], cap: AlertCap | None = None,
                 reference: Mapping[str, Mapping[str, Any]] = EMPTY) -> None:
        super().__init__(lambda: Runtime(detectors, cap=cap, reference=reference))
        self.detectors = detectors

    def process(self, event: dict[str, Any], source: Source) -> list[Alert]:
        rt = self.task(source.partition)
        alerts = rt.process(event, source)
        self._collect(rt)
        return alerts
