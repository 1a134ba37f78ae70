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
from typing import Any, Callable, Generator, Iterable, Mapping

import orjson

from models.contracts.alert import Alert, Source
from models.contracts.report import Report
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

#: The cyclic garbage collector's thresholds for a process that keeps runtimes (the worker, the lab's harnesses,
#: the tests): the state is millions of small long-lived objects and the events make no cycles, so Python's
#: default (a young collection every 700 allocations, a full one that walks every state object every few seconds
#: under load) costs more than it frees. Reference counting frees the events. ``gc.set_threshold(*GC_THRESHOLDS)``.
GC_THRESHOLDS = (50_000, 50, 100)


#: Events a record's or an envelope's processing handles between two steps (``Ingest.stepwise``,
#: ``Receiver.stepwise``): a few milliseconds of work, after which the worker may give its loop a turn.
STEP_EVENTS = 32

#: Work done a step at a time: a generator that yields (nothing) between steps and returns its result.
Steps = Generator[None, None, Any]


def run_to_end(steps: Steps) -> Any:
    """The result of work done a step at a time, all steps taken at once.

    >>> def count(n):
    ...     for i in range(n):
    ...         yield
    ...     return n
    >>> run_to_end(count(3))
    3
    """
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


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


#: A state whose text is at least this long (a doctor's table of co-visiting pairs, an institution's daily charts)
#: rests only after :data:`LARGE_STATE_IDLE` checkpoints without use; a smaller one as soon as a checkpoint has
#: written it. Large keys are few and used every few seconds: resting them after one idle checkpoint decoded the
#: same tens of KiB again and again (0.58 s of the bench's 9 s paced phase), while the memory resting saves is in
#: the many small keys — a burst touches tens of thousands of them, and keeping each as an object for one more
#: checkpoint was 70 MiB of the peak (docs/benchmark.md).
LARGE_STATE_CHARS = 4096
LARGE_STATE_IDLE = 10


class _Entry:
    """One key's state and timers. A state in use is a Python object; a checkpoint encodes it once for the
    changelog, and from then on it rests as that text alone until it is next used: a few hundred bytes instead of
    Python objects several times that size (``zhijian bench --entities``). A large state keeps the object beside its
    text and rests only after :data:`LARGE_STATE_IDLE` checkpoints without use, and so does a key encoded just
    before an event changed it (copy on write); a small one in constant use is decoded again once per checkpoint
    (a few µs). A key with no timer keeps none."""

    __slots__ = ("obj", "text", "_timers", "seen", "idle")

    def __init__(self, state: dict[str, Any] | None = None, timers: dict[str, float] | None = None,
                 seen: float = float("-inf"), text: str | None = None) -> None:
        self.obj: dict[str, Any] | None = state if text is None else None
        self.text: str | None = text  # the encoded state while it is current; None once it may have changed
        self._timers = timers or None
        self.seen = seen
        self.idle = 0  # checkpoints a large state has waited unused since it was encoded

    @property
    def state(self) -> dict[str, Any]:
        """The state, decoded for use (the caller may change it: the text is no longer current)."""
        s = self.obj
        if s is None:
            s = self.obj = orjson.loads(self.text) if self.text else {}
        self.text = None
        self.idle = 0
        return s

    @property
    def timers(self) -> dict[str, float]:
        if self._timers is None:
            self._timers = {}
        return self._timers

    def encode(self) -> str:
        """The state as JSON text (as str: orjson's bytes keep the whole 4 KiB buffer they were written in;
        decode() copies them tight)."""
        if self.text is None:
            self.text = orjson.dumps(self.obj).decode() if self.obj else ""
        if not self._timers:
            self._timers = None
        return self.text

    def rest(self) -> bool:
        """Keep only the text (the state was not used since it was encoded); False for a large state that waits
        another checkpoint first (:data:`LARGE_STATE_IDLE`)."""
        if self.text is not None and self.obj is not None:
            if len(self.text) >= LARGE_STATE_CHARS and self.idle < LARGE_STATE_IDLE:
                self.idle += 1
                return False
            self.obj = None
        return True

    def value(self) -> tuple[dict[str, Any], dict[str, float]]:
        """State and timers as JSON values, leaving the entry as it is."""
        s = self.obj
        if s is None:
            s = orjson.loads(self.text) if self.text else {}
        return s, self._timers or {}


class Capture:
    """The changes of one runtime as they were at a checkpoint's capture, encoded while the runtime runs on.

    :meth:`Runtime.capture` costs O(1): it takes the set of keys changed since the last capture. The keys are
    encoded later, a slice at a time (:meth:`slice`), between the records the agents go on processing; a key the
    runtime is about to change before its turn is encoded first (copy on write, :meth:`take`), so what is written
    is exactly the state at the capture. The runtime's own record (watermark, metadata) is encoded at once."""

    __slots__ = ("runtime", "pending", "records", "taken", "resting")

    def __init__(self, runtime: "Runtime", pending: set[tuple[int, str]], meta: bytes | None,
                 resting: list[tuple[int, str]] | None = None) -> None:
        self.runtime = runtime
        self.pending = pending
        self.records: list[tuple[str, str, bytes | None]] = [(META, "", meta)] if meta is not None else []
        self.taken: list[tuple[int, str]] = []
        self.resting = resting or []  # encoded by the previous capture: rest as text unless used since

    def take(self, k: tuple[int, str]) -> None:
        """Encode key ``k`` as captured (before the runtime changes it)."""
        self.pending.discard(k)
        self.taken.append(k)
        self.records.append(self.runtime._encoded(k))

    def slice(self, n: int = 2000) -> list[tuple[str, str, bytes | None]]:
        """Up to ``n`` more (detector, key, changelog value or None for a deleted key), until :attr:`done`."""
        pending, take, store = self.pending, self.take, self.runtime._store
        for k in self.resting[-n:]:
            e = store.get(k)
            if e is not None and not e.rest():
                self.taken.append(k)  # a large state: the next capture looks at it again
        del self.resting[-n:]
        while pending and len(self.records) < n:
            # pop(), not next(iter(pending)): a set's iterator starts at its first slot every time, and walks
            # over the slots already emptied — quadratic in the keys of a large checkpoint (12 s of a 15 s write
            # after the 200k-event burst)
            k = pending.pop()
            take(k)
            e = store.get(k)
            if e is not None and len(e.text) < LARGE_STATE_CHARS:  # type: ignore[arg-type]
                e.obj = None  # a small state rests as its text at once (see _Entry)
        out, self.records = self.records, []
        if not pending and not self.resting and self.runtime._capture is self:
            self.runtime._capture = None
        return out

    @property
    def done(self) -> bool:
        """Everything written out (a slice may return nothing while keys are still being put to rest)."""
        return not (self.pending or self.records or self.resting)

    def all(self) -> list[tuple[str, str, bytes | None]]:
        out = []
        while not self.done:
            out += self.slice()
        return out

    def abort(self) -> None:
        """The write failed: the next capture carries every key of this one again."""
        rt = self.runtime
        rt._dirty |= self.pending | set(self.taken)
        rt._meta_dirty = True
        self.pending, self.records, self.resting = set(), [], []
        if rt._capture is self:
            rt._capture = None


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
        # what process() walks per event: each detector but the cap (it takes alerts, not events), and the event
        # field holding its key where it keys by one field (KeyedDetector.key_of not overridden)
        self._steps = [(i, d, d.key_field if d.key is not None and type(d).key_of is KeyedDetector.key_of else None)
                       for i, d in enumerate(self.detectors) if i != self._cap]
        self._versioned_steps = [step for step in self._steps if step[1].versioned]
        #: reports published by the calls since the caller last took them (Context.publish; take_reports)
        self.reports: list[Report] = []
        self._stateless = Context("", {}, float("-inf"), {}, reference, self.reports)
        self.watermark = float("-inf")
        self.failures: list[DetectorFailure] = []  # of the last call; the caller reads and clears
        self._store: dict[tuple[int, str], _Entry] = {}
        self._heap: list[tuple[float, int, int, str, str]] = []
        self._seq = itertools.count()
        self._dirty: set[tuple[int, str]] = set()
        self._capture: Capture | None = None  # being written: its keys are encoded before they change
        self._written: list[tuple[int, str]] = []  # keys the last capture encoded: the next rests those unused since
        self._next_sweep = float("-inf")

    # -- processing

    def process(self, event: dict[str, Any], source: Source) -> list[Alert]:
        """Hand one event to every detector that has a key for it, then fire what its time made due."""
        alerts: list[Alert] = []
        t = event["_t"]
        # a claim's replacement or void: judged by versioned detectors only (the others judged its original)
        steps = self._steps if event.get("adjustment", "original") == "original" else self._versioned_steps
        # what _enter and _settle do, inline: this loop is the runtime's share of every event's cost
        store, dirty, capture, watermark = self._store, self._dirty, self._capture, self.watermark
        reference, reports = self.reference, self.reports
        pending = capture.pending if capture is not None else ()
        for i, detector, field in steps:
            try:
                if field is not None:  # KeyedDetector.key_of, without the call
                    key = event.get(field)
                    if key is None:
                        continue
                    if type(key) is not str:
                        key = str(key)
                elif detector.key is None:  # it keeps no state: judges the event alone
                    self._stateless.watermark = watermark
                    alerts += detector.process(self._stateless, event, source) or []
                    continue
                else:
                    key = detector.key_of(event)
                    if key is None:
                        continue
                k = (i, key)
                if k in pending:
                    capture.take(k)  # type: ignore[union-attr]
                entry = store.get(k)
                if entry is None:
                    entry = store[k] = _Entry()
                if t > entry.seen:
                    entry.seen = t
                state = entry.obj
                if state is None:
                    state = entry.state
                else:
                    entry.text = None  # about to change: the encoded text is no longer current
                timers = entry._timers
                if timers is None:
                    timers = entry._timers = {}
                existed = bool(state or timers)
                ctx = Context(key, state, watermark, timers, reference, reports)
                out = detector.process(ctx, event, source)
                if out:
                    alerts += out
                if ctx.set_now:
                    for tag, due in ctx.set_now:
                        if timers.get(tag) == due:
                            heapq.heappush(self._heap, (due, next(self._seq), i, key, tag))
                if ctx.state or timers:
                    dirty.add(k)
                else:  # empty, no timer: dropped
                    store.pop(k, None)
                    if existed:
                        dirty.add(k)
            except Exception as e:  # a detector bug must not stop the others, nor the stream
                self.failures.append(DetectorFailure(detector.name, e))
        if not self.external_watermark and not event.get(HOLD_CLOCK):
            alerts += self._advance(t)
        return self._capped(alerts) if alerts else alerts

    def take_reports(self) -> list[Report]:
        """The reports published since the last call (the list is emptied, not replaced: the contexts hold it)."""
        out = list(self.reports)
        self.reports.clear()
        return out

    def advance(self, t: float) -> list[Alert]:
        """Move the watermark to ``t`` (never back) and fire the timers it passes, in time order."""
        return self._capped(self._advance(t))

    def _enter(self, i: int, key: str, t: float) -> tuple[_Entry, Context, bool]:
        """The entry of detector ``i`` under ``key`` (made when new), touched at event time ``t``; the context a
        call on it gets; and whether it held anything before the call."""
        k = (i, key)
        capture = self._capture
        if capture is not None and k in capture.pending:
            capture.take(k)
        entry = self._store.get(k)
        if entry is None:
            entry = self._store[k] = _Entry()
        if t > entry.seen:
            entry.seen = t
        state, timers = entry.state, entry.timers
        return entry, Context(key, state, self.watermark, timers, self.reference, self.reports), bool(state or timers)

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
            if self._capture is not None and (i, key) in self._capture.pending:
                self._capture.take((i, key))
            del entry.timers[tag]
            detector = self.detectors[i]
            try:
                ctx = Context(key, entry.state, self.watermark, entry.timers, self.reference, self.reports)
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
        if ctx.set_now:
            for tag, due in ctx.set_now:
                if entry.timers.get(tag) == due:
                    heapq.heappush(self._heap, (due, next(self._seq), i, key, tag))
        if not ctx.state and not entry._timers:
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
            if self._capture is not None and k in self._capture.pending:
                self._capture.take(k)
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
        """Everything, as JSON values of its own (nothing shared with the running runtime, which goes on changing
        its states and metadata): restore() on another runtime continues exactly from here."""
        return orjson.loads(self.dump())

    def dump(self) -> bytes:
        """The snapshot as JSON text: what to keep of one that may never be restored (decoding it is most of its
        cost: ten times the encoding)."""
        return orjson.dumps({"watermark": _json_t(self.watermark), "next_sweep": _json_t(self._next_sweep),
                             "meta": self.meta, "entries": [self._value(k, e) for k, e in self._store.items()]})

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
        if self._capture is not None and (i, key) in self._capture.pending:
            self._capture.take((i, key))
        self._store[(i, key)] = _Entry(None, dict(timers), _t(seen), orjson.dumps(state).decode() if state else "")
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
            k = (self.by_name[name], key)
            if self._capture is not None and k in self._capture.pending:
                self._capture.take(k)
            self._store.pop(k, None)  # its heap entries die when popped

    def capture(self) -> Capture:
        """The changes since the last capture, to be encoded while this runtime runs on (:class:`Capture`); call
        between two events. The previous capture must have been written (or aborted) first."""
        assert self._capture is None, "the previous capture is still being written"
        meta = None
        if self._meta_dirty:
            self._meta_dirty = False
            meta = orjson.dumps({"meta": self.meta, "watermark": _json_t(self.watermark),
                                 "next_sweep": _json_t(self._next_sweep)})
        # the keys the last capture encoded rest as text if unused since: in the slices too, not here (freeing
        # thousands of states takes tens of milliseconds)
        capture = Capture(self, self._dirty, meta, self._written)
        self._written = capture.taken
        self._dirty = set()
        if capture.pending or capture.resting:
            self._capture = capture
        return capture

    def _encoded(self, k: tuple[int, str]) -> tuple[str, str, bytes | None]:
        """Key ``k``'s changelog value (None: deleted)."""
        name = self.detectors[k[0]].name
        e = self._store.get(k)
        if e is None:
            return name, k[1], None
        text = e.encode()
        value = orjson.dumps([name, k[1], orjson.Fragment(text or "{}"), e._timers or {}, _json_t(e.seen)])
        # a tight copy: orjson's bytes keep the buffer they were written in (4 KiB for a 300-byte record, 8 KiB for
        # 1 KB, 64 KiB for 5 KB), and a checkpoint holds its records until its transaction is sent — after a burst,
        # tens of thousands of them, scattered between the states in the C heap (docs/benchmark.md)
        return name, k[1], memoryview(value).tobytes()

    def changes(self) -> list[tuple[str, str, list[Any] | None]]:
        """(detector, key, entry or None for a deleted key) of every key changed since the last call: a capture,
        written at once."""
        return [(d, k, None if v is None else orjson.loads(v)) for d, k, v in self.capture().all()]


class PerPartition:
    """A store per owned partition, made on a partition's first use and dropped when the worker gives the
    partition up (its new owner restores it from the changelog)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self.tasks: dict[int, Any] = {}
        self.failures: list[DetectorFailure] = []  # of the calls since the caller last cleared it
        self.reports: list[Report] = []  # published by the calls since the caller last took them (take_reports)

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
        if runtime.reports:
            self.reports += runtime.take_reports()

    def take_reports(self) -> list[Report]:
        """The reports the partitions' runtimes published since the last call."""
        out, self.reports = self.reports, []
        return out


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
