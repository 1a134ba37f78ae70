"""Conformance checks every keyed detector passes, in the spirit of river's ``checks``.

The suite (``tests/test_conformance.py``) finds every detector in the registry by itself and runs it over a
simulated region as the detector's own :meth:`~models.engine.detector.KeyedDetector._conformance_params` ask
(:class:`Params`: how many days, only its own scenarios, a watch list to read).

Each check runs a detector over the same events in two ways that must not differ, and
compares the alerts by (detector, alert id, status) and the reports it publishes
(:class:`~models.contracts.report.Report`) by (detector, key, body):

* :func:`check_repeat` — every event delivered twice (at-least-once) gives no new alert id;
* :func:`check_snapshot` — a snapshot taken mid-stream, through JSON, restored into a fresh
  runtime that carries on, gives exactly the alerts of an uninterrupted run;
* :func:`check_split` — the events split by the detector's key over several partitions, each
  with its own runtime (as several workers would hold them), give exactly the alerts of one;
* :func:`check_rekeyed` — for a detector keyed by another entity than its stream's partition key:
  the events split over input partitions by *that* key and forwarded through repartition envelopes
  (:mod:`models.engine.rekey`) under several layouts of a worker group (:class:`Layout`: partitions read
  one after another or at random speeds, checkpoints and offset commits on both sides, owners killed and
  replaced from their last checkpoint) give exactly the alerts of one plain run;
* :func:`check_no_free_text` — with every free-text field of the contract (a drug's name, a
  long-term reason) replaced by a marker, no alert carries the marker: reasons and numbers hold
  codes and numbers only.

At the end of a run every runtime is advanced to the newest event time of the whole stream, as a
stream that goes on would eventually do, so that timers due by then have fired in every layout.

>>> from models.contracts.alert import Source
>>> from models.rules.prescription.over_supply import OverSupplyDetector
>>> rx = {"prescription_id": "RX1", "institution_id": "H1", "department": "IM", "prescriber_id": "D7",
...       "patient": "P1", "visit_type": "outpatient", "_t": 1767225600.0,
...       "items": [{"drug_code": "A", "name": "amoxicillin", "days_supply": 14}]}
>>> events = [(rx, Source("zhijian.prescriptions", 0, 0, "RX1"))]
>>> check_all(OverSupplyDetector, events)
1
"""
from __future__ import annotations

import heapq
import os
import random
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import orjson

from models.contracts.alert import Alert, Source
from models.contracts.records import free_text_fields
from models.contracts.report import Report
from models.engine.detector import EMPTY, KeyedDetector
from models.engine.rekey import Forwarder, Receiver
from models.engine.runtime import Runtime

Events = list[tuple[dict[str, Any], Source]]


@dataclass(frozen=True)
class Params:
    """What a detector asks of the conformance suite (its ``_conformance_params()``)."""

    #: days of the simulated region to run it over
    days: float = 4.0
    #: only the scenarios planted for it: a pattern that takes weeks to show would otherwise raise nothing
    own_scenarios: bool = False
    #: the simulated region's size (1 = the full region)
    scale: float = 0.4
    #: the simulated region's first day (ISO date; "" = the simulator's own): a detector judging calendar months
    #: starts near a month's end, so that a short run holds a month before and a whole month
    start: str = ""
    #: (entity kind, event field) of a provider one in fifty of whom the watch lists exclude, for a rule that
    #: alerts on excluded providers only
    excluded: tuple[str, str] | None = None
    #: overrides of the detector's configuration for the suite (a smaller memory bound, so its eviction is
    #: exercised and each full snapshot of the layout model stays small)
    limits: dict[str, Any] = field(default_factory=dict)

    def tables(self, events: Events, tables: Mapping[str, Mapping[str, Any]] = EMPTY,
               every: int = 50) -> Mapping[str, Mapping[str, Any]]:
        """The reference data the run needs: ``tables`` and, with ``excluded``, a watch list naming the provider of
        one event in ``every``."""
        if self.excluded is None:
            return tables
        kind, field = self.excluded
        listed = {f"{kind}:{e[field]}": {"list": "excluded"} for e, _ in events[::every]}
        return {**tables, "watchlist": listed}


def params_of(cls: type[KeyedDetector]) -> Params:
    """The detector's conformance parameters (unknown ones are refused)."""
    return Params(**cls._conformance_params())


def _said(x: Alert | Report) -> tuple[str, str, str]:
    """What an output says: (detector, its identity, what it states) — an alert's id and status, a report's key and
    body."""
    if isinstance(x, Report):
        return x.detector, x.key.decode(), orjson.dumps(x.body, option=orjson.OPT_SORT_KEYS).decode()
    return x.detector, x.alert_id, x.status


def _ids(outputs: Iterable[Alert | Report]) -> set[tuple[str, str, str]]:
    """Everything the outputs say: what must not differ."""
    return {_said(x) for x in outputs}


def _run(runtime: Runtime, events: Events, until: float | None = None) -> list[Alert | Report]:
    """The alerts of a run, then the reports it published."""
    out: list[Alert | Report] = []
    for event, source in events:
        out += runtime.process(dict(event), source)
    if until is not None:
        out += runtime.advance(until)
    assert not runtime.failures, runtime.failures
    return out + runtime.take_reports()  # as the worker takes them


def _end(events: Events) -> float:
    return max(e["_t"] for e, _ in events) + 1e-6


def reference(factory: Callable[[], KeyedDetector], events: Events,
              tables: Mapping[str, Mapping[str, Any]] = EMPTY) -> set[tuple[str, str, str]]:
    """The alerts of one plain run (``tables``: the reference data the detectors look up)."""
    return _ids(_run(Runtime([factory()], reference=tables), events, _end(events)))


Ids = set[tuple[str, str, str]]


def check_repeat(factory: Callable[[], KeyedDetector], events: Events, want: Ids | None = None,
                 tables: Mapping[str, Mapping[str, Any]] = EMPTY) -> None:
    twice = [pair for pair in events for _ in (0, 1)]
    got = _ids(_run(Runtime([factory()], reference=tables), twice, _end(events)))
    want = reference(factory, events, tables) if want is None else want
    assert got == want, f"a repeated event changed the alerts: {sorted(got ^ want)[:5]}"


def check_snapshot(factory: Callable[[], KeyedDetector], events: Events, want: Ids | None = None,
                   tables: Mapping[str, Mapping[str, Any]] = EMPTY, at: float = 0.5) -> None:
    cut = int(len(events) * at)
    first = Runtime([factory()], reference=tables)
    alerts = _run(first, events[:cut])
    snapshot = first.snapshot()  # JSON values of its own, as a changelog would carry
    second = Runtime([factory()], reference=tables)
    second.restore(snapshot)
    alerts += _run(second, events[cut:], _end(events))
    got, want = _ids(alerts), reference(factory, events, tables) if want is None else want
    assert got == want, f"snapshot/restore changed the alerts: {sorted(got ^ want)[:5]}"


def check_split(factory: Callable[[], KeyedDetector], events: Events, want: Ids | None = None,
                tables: Mapping[str, Mapping[str, Any]] = EMPTY, partitions: int = 3) -> None:
    probe = factory()
    parts: list[Events] = [[] for _ in range(partitions)]
    for event, source in events:
        key = probe.key_of(event)
        p = zlib.crc32(key.encode()) % partitions if key is not None else 0
        parts[p].append((event, source._replace(partition=p)))
    alerts: list[Alert] = []
    for part in parts:
        if part:
            alerts += _run(Runtime([factory()], reference=tables), part, _end(events))
    got = _ids(alerts)
    want = reference(factory, events, tables) if want is None else want
    assert got == want, f"splitting by key changed the alerts: {sorted(got ^ want)[:5]}"


def check_rekeyed(factory: Callable[[], KeyedDetector], events: Events, source_key: Callable[[dict], str],
                  want: Ids | None = None, sources: int = 3, targets: int = 2, schedules: int | None = None) -> None:
    """The re-keyed path under ``schedules`` seeded layouts of a worker group (:class:`Layout`); each must give the
    alerts of one plain run."""
    want = reference(factory, events) if want is None else want
    schedules = schedules or int(os.environ.get("CONFORMANCE_SCHEDULES", "4"))
    for seed in range(schedules):
        got = Layout(factory, events, source_key, sources, targets, seed).run()
        assert got == want, f"re-keying changed the alerts (schedule {seed}): {sorted(got ^ want)[:5]}"


class Layout:
    """A pure model of a worker group over the re-keyed path, one seeded schedule of it: the events split by the
    stream's partition key over ``sources`` input partitions, in records of a few events; the input partitions
    read in turn at uneven speeds — schedule 0 reads each whole before the next, the others take random chunks;
    forwarders flushed at checkpoints (with the idle mark once their partition is read to its end), the envelopes
    kept on ``targets`` repartition logs (through JSON, as Kafka carries them) and read by receivers at their own
    speeds; checkpoints and offset commits on both sides as the worker makes them (the offsets chosen before the
    state is captured); and, in odd schedules, input and receiver owners killed at random and replaced from their
    last checkpoint and committed offset."""

    def __init__(self, factory: Callable[[], KeyedDetector], events: Events, source_key: Callable[[dict], str],
                 sources: int, targets: int, seed: int) -> None:
        self.factory, self.sources, self.targets = factory, sources, targets
        self.rng = random.Random(seed)
        self.sequential, self.kills = seed == 0, seed % 2 == 1
        self.records: list[list[list[tuple[dict[str, Any], Source]]]] = [[] for _ in range(sources)]
        for event, source in events:
            p = zlib.crc32(source_key(event).encode()) % sources
            part = self.records[p]
            if not part or len(part[-1]) >= 1 + zlib.crc32(source.event_id.encode()) % 6:
                part.append([])
            part[-1].append((event, source._replace(partition=p, offset=len(part) - 1)))
        self.logs: list[list[dict[str, Any]]] = [[] for _ in range(targets)]
        self.forwarders = [Forwarder([factory()], "input", p, targets) for p in range(sources)]
        self.read = [0] * sources  # next input offset to read
        self.applied = [-1] * sources  # the input state: last offset applied
        self.checkpointed = [(-1, 0)] * sources  # (applied, committed offset) at the last checkpoint
        self.receivers = [Receiver([factory()], sources) for _ in range(targets)]
        self.taken = [0] * targets  # next envelope to read
        # each receiver's last checkpoint, kept as JSON text: decoded only when a kill restores it
        self.saved = [(self.receivers[r].runtime.dump(), 0) for r in range(targets)]
        self.alerts: list[Alert | Report] = []  # and the reports published

    def _input(self, p: int, n: int) -> None:
        for _ in range(n):
            if self.read[p] >= len(self.records[p]):
                return
            offset = self.read[p]
            self.read[p] += 1
            if offset <= self.applied[p]:
                continue  # in the restored state already: skipped
            for event, source in self.records[p][offset]:
                self.forwarders[p].add(dict(event), source)
            self.applied[p] = offset

    def _checkpoint_input(self, p: int) -> None:
        chosen = self.read[p]  # the offsets are chosen before the state is captured
        for target, envelope in self.forwarders[p].flush(idle=self.read[p] >= len(self.records[p])):
            self.logs[target].append(orjson.loads(orjson.dumps(envelope)))
        self.checkpointed[p] = (self.applied[p], chosen)

    def _receive(self, r: int, n: int) -> None:
        for _ in range(n):
            if self.taken[r] >= len(self.logs[r]):
                return
            self.alerts += self.receivers[r].receive(self.logs[r][self.taken[r]])
            self.alerts += self.receivers[r].runtime.take_reports()
            self.taken[r] += 1
        assert not self.receivers[r].runtime.failures, self.receivers[r].runtime.failures

    def _checkpoint_receiver(self, r: int) -> None:
        chosen = self.taken[r]
        self.saved[r] = (self.receivers[r].runtime.dump(), chosen)

    def _kill(self) -> None:
        if self.rng.random() < 0.5:
            p = self.rng.randrange(self.sources)
            self.forwarders[p] = Forwarder([self.factory()], "input", p, self.targets)
            self.applied[p], self.read[p] = self.checkpointed[p]
        else:
            r = self.rng.randrange(self.targets)
            self.receivers[r] = Receiver([self.factory()], self.sources)
            snapshot, self.taken[r] = self.saved[r]
            self.receivers[r].runtime.restore(orjson.loads(snapshot))

    def run(self) -> Ids:
        rng = self.rng
        while (any(self.read[p] < len(self.records[p]) for p in range(self.sources))
               or any(self.taken[r] < len(self.logs[r]) for r in range(self.targets))):
            busy = [p for p in range(self.sources) if self.read[p] < len(self.records[p])]
            if busy:
                p = busy[0] if self.sequential else rng.choice(busy)
                self._input(p, 10**9 if self.sequential else rng.randint(1, 40))
                if self.sequential or rng.random() < 0.4:
                    self._checkpoint_input(p)
            r = rng.randrange(self.targets)
            self._receive(r, rng.randint(0, 30))
            if rng.random() < 0.4:
                self._checkpoint_receiver(r)
            if self.kills and rng.random() < 0.05:
                self._kill()
            if not busy:
                for q in range(self.sources):
                    self._checkpoint_input(q)
        end = max(e["_t"] for part in self.records for record in part for e, _ in record) + 1e-6
        for f in self.forwarders:
            f.watermark = end  # the stream goes on: every source moves past the last event
            for target, envelope in f.flush(idle=True):
                self.alerts += self.receivers[target].receive(orjson.loads(orjson.dumps(envelope)))
                self.alerts += self.receivers[target].runtime.take_reports()
        return _ids(self.alerts)


#: What :func:`check_no_free_text` writes into every free-text field.
FREE_TEXT_MARKER = "\u202efree text\u001b[0m"


def _mark(value: Any, fields: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: (FREE_TEXT_MARKER if k in fields and isinstance(v, str)
                    else _mark(v, fields) if isinstance(v, (dict, list)) else v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark(v, fields) if isinstance(v, (dict, list)) else v for v in value]
    return value


def check_no_free_text(factory: Callable[[], KeyedDetector], events: Events, want: Ids | None = None,
                       tables: Mapping[str, Mapping[str, Any]] = EMPTY) -> None:
    """Free text from the record never reaches an alert; the alerts are the same without it."""
    fields = free_text_fields(factory().stream)
    marked = [(_mark(e, fields), s) for e, s in events]
    alerts = _run(Runtime([factory()], reference=tables), marked, _end(events))
    for a in alerts:
        assert "free text" not in a.to_json().decode(), f"{a.detector} copied free text into {a.to_json()[:300]!r}"
    got = _ids(alerts)
    want = reference(factory, events, tables) if want is None else want
    assert got == want, f"free-text fields changed the alerts: {sorted(got ^ want)[:5]}"


def _final(alerts: Iterable[Alert | Report]) -> dict[str, str]:
    """alert id → the status of its last record (what stands once every record is read); a report's key → its
    last body."""
    out: dict[str, str] = {}
    for a in alerts:
        _, identity, stated = _said(a)
        out[identity] = stated
    return out


def check_versions(factory: Callable[[], KeyedDetector], events: Events,
                   tables: Mapping[str, Mapping[str, Any]] = EMPTY, share: float = 0.3, seed: int = 0) -> None:
    """A claim's versions (:mod:`models.rules.claims.versions`): a share of the claims sent again as replacements of
    unchanged content — some at once, some after other claims, some twice — must leave every alert where the
    originals alone leave it (the final state's alerts, by their last record). Checked on claim streams only."""
    rng = random.Random(seed)
    variant: list[tuple[dict[str, Any], Source]] = []
    later: list[tuple[int, int, tuple[dict[str, Any], Source]]] = []  # a heap: (due after event n, order, pair)
    for n, (event, source) in enumerate(events):
        variant.append((event, source))
        while later and later[0][0] <= n:
            variant.append(heapq.heappop(later)[2])
        if "claim_id" not in event or "adjustment" in event or rng.random() >= share:
            continue
        for v in range(2, 2 + rng.choice((1, 1, 2))):
            again = {**event, "adjustment": "replacement", "version": v}
            pair = (again, source._replace(event_id=f"{source.event_id}#v{v}"))
            heapq.heappush(later, (n + rng.choice((0, 1, 5, 40)), len(variant) * 4 + v, pair))
    variant += [heapq.heappop(later)[2] for _ in range(len(later))]
    want = _final(_run(Runtime([factory()], reference=tables), events, _end(events)))
    got = _final(_run(Runtime([factory()], reference=tables), variant, _end(events)))
    assert got == want, f"replacing claims by unchanged versions changed the alerts: " \
                        f"{sorted(set(got.items()) ^ set(want.items()))[:5]}"


def check_all(factory: Callable[[], KeyedDetector], events: Events,
              source_key: Callable[[dict], str] | None = None,
              tables: Mapping[str, Mapping[str, Any]] = EMPTY) -> int:
    """Run every check (the re-keying one given the stream's partition key; ``tables``: the reference data
    the detectors look up); return how many alerts the reference run raised."""
    want = reference(factory, events, tables)
    check_repeat(factory, events, want, tables)
    check_snapshot(factory, events, want, tables)
    check_split(factory, events, want, tables)
    check_no_free_text(factory, events, want, tables)
    if factory().stream == "claim":
        check_versions(factory, events, tables)
    if source_key is not None:
        check_rekeyed(factory, events, source_key, want)
    return len(want)
