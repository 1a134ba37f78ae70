"""Ingestion of one Kafka record: raw bytes → orjson → schema check → pseudonymize → detectors.

This module has no Faust or Kafka import: the agent hands it a record's bytes and
coordinates, and gets back an explicit *ok* stream (alerts) and *error* stream (dead
letters), in the style of bytewax. Nothing a record contains can make it raise.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

import orjson

from models.contracts.alert import Alert, Source
from models.contracts.report import Report
from models.contracts.records import InvalidRecord, decode, event_id, validate
from models.engine.runtime import HOLD_CLOCK, STEP_EVENTS, Steps, run_to_end

log = logging.getLogger(__name__)


class Unit(Protocol):
    """What a stream's valid events are handed to: a runtime of its detectors (:mod:`models.engine.runtime`) or
    the re-keying forwarders (:mod:`models.engine.rekey`)."""

    name: str

    def process(self, event: dict[str, Any], source: Source) -> list[Alert]: ...


@dataclass(slots=True)
class DeadLetter:
    """A refused record (or one refused event of an envelope), unchanged, with why."""

    value: bytes | None
    reason: str
    detail: str
    index: int | None = None  # position in the envelope, when only one event of it was refused

    def headers(self, topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
        h = [
            ("zhijian.error.topic", topic.encode()),
            ("zhijian.error.partition", str(partition).encode()),
            ("zhijian.error.offset", str(offset).encode()),
            ("zhijian.error.reason", self.reason.encode()),
            ("zhijian.error.message", self.detail[:1000].encode()),
        ]
        if self.index is not None:
            h.append(("zhijian.error.batch_index", str(self.index).encode()))
        return h


def _refused_value(raw: bytes | None, event: Any, whole: bool) -> bytes | None:
    """The value a refused event is dead-lettered with: the record itself when it holds only this event, else
    the event re-encoded — or, when it cannot be (nested past orjson's limit), the whole record."""
    if whole:
        return raw
    try:
        return orjson.dumps(event)
    except (TypeError, orjson.JSONEncodeError):
        return raw


#: A measurement cannot be later than its upload; an hour covers a device clock running fast.
MAX_AHEAD_OF_RECORD_S = 3600.0
#: Within one partition event time moves by minutes or hours: an event more than a day further ahead of
#: everything the partition has shown (beyond what the records' own timestamps moved since) is a wrong date
#: typed into a record, or the first event after a quiet spell of a sparse partition — which one, only the
#: events after it can tell.
MAX_AHEAD_OF_PARTITION_S = 86400.0
#: An event stamped within a day of the record that carries it is live and moves the clock freely: a backfill
#: of old data followed by live data must not hold back the first live reading.
FRESH_S = 86400.0
#: Three events that agree on a jump (each within the bound of the others) confirm it: the partition's time
#: did move on (a replayed file with a gap, a second file of later data, a quiet spell).
CONFIRMATIONS = 3


def check_event_time(t: float, record_time: float | None) -> None:
    """Refuse an event stamped after the record that carries it was written.

    An event stamped in the future would move the partition's watermark and make every device of it look
    silent, every manifest overdue. A measurement cannot postdate its upload: an event more than
    :data:`MAX_AHEAD_OF_RECORD_S` after the timestamp of the Kafka record that carries it (live, the wall
    clock of the sender or the broker) is refused (``absurd_value``) before it reaches any detector.

    >>> check_event_time(1000.0, 1060.0)
    >>> try:
    ...     check_event_time(1000.0 + 47 * 3600, 1120.0)
    ... except InvalidRecord as e:
    ...     print(e.reason, "-", e.detail)
    absurd_value - event_time is 47.0 h after its record was written (limit 1 h)
    """
    if record_time and t > record_time + MAX_AHEAD_OF_RECORD_S:
        raise InvalidRecord("absurd_value", f"event_time is {(t - record_time) / 3600:.1f} h after its record "
                                            f"was written (limit {MAX_AHEAD_OF_RECORD_S / 3600:g} h)")


class PartitionClock:
    """How far one input partition's event time has got, and whether an event may move it on.

    The record-time bound (:func:`check_event_time`) cannot catch a wrong date inside a replayed file: its
    records are written now and its events are years old, so a claim of 2019 typed as 2023 is still in the
    past. Moving the partition's watermark four years on would expire every state and fire every timer of
    the partition. So an event that is not live (more than :data:`FRESH_S` before its record was written)
    and more than :data:`MAX_AHEAD_OF_PARTITION_S` ahead of the partition's newest event, beyond what the
    records' own timestamps moved since, is **held**: judged like any other (nothing is lost: the first
    claims after a sparse partition's quiet weekend look exactly the same), but it does not move the
    partition's watermark — until :data:`CONFIRMATIONS` such events within that bound of each other confirm
    the jump. The worker counts held events (``zhijian_events_held_total``).

    >>> day = 86400.0
    >>> now = 1795140000.0
    >>> c = PartitionClock()
    >>> [c.admit(1546300800.0 + n * 3600, now + n) for n in range(3)]   # a 2019 file replayed now
    [True, True, True]
    >>> c.admit(1546300800.0 + 4 * 365 * day, now + 4)                # 2019 typed as 2023: judged, held
    False
    >>> c.admit(1546300800.0 + 4 * 3600, now + 5), c.newest == 1546300800.0 + 4 * 3600
    (True, True)
    >>> [c.admit(1546300800.0 + 5 * day + n, now + 6 + n) for n in range(3)]   # a real jump: the third confirms
    [False, False, True]
    >>> c.admit(now - 60.0, now + 9)                                   # live data after the backfill
    True
    """

    __slots__ = ("newest", "_newest_record", "_ahead")

    def __init__(self) -> None:
        self.newest: float | None = None
        self._newest_record: float | None = None  # the record timestamp of the newest event
        self._ahead: list[float] = []  # recent held event times

    def admit(self, t: float, record_time: float | None) -> bool:
        """Refuses an event stamped after its record (:func:`check_event_time`); else whether it may move the
        partition's clock."""
        check_event_time(t, record_time)
        fresh = record_time is not None and t >= record_time - FRESH_S
        if not fresh and self.newest is not None:
            elapsed = max(0.0, record_time - self._newest_record) if record_time and self._newest_record else 0.0
            if t - self.newest - elapsed > MAX_AHEAD_OF_PARTITION_S:
                self._ahead = [a for a in self._ahead if abs(a - t) <= MAX_AHEAD_OF_PARTITION_S][-CONFIRMATIONS:]
                if len(self._ahead) < CONFIRMATIONS - 1:
                    self._ahead.append(t)
                    return False
                self._ahead = []  # confirmed: the partition's time did jump
        if self.newest is None or t > self.newest:
            self.newest, self._newest_record = t, record_time
        return True


@dataclass(slots=True)
class Outcome:
    read: int = 0  # events the record held (1 for one that could not be decoded)
    refused: int = 0  # of them, refused by the contract (dead-lettered)
    events: int = 0
    held: int = 0  # of the events judged, those not allowed to move the partition's clock (PartitionClock)
    alerts: list[Alert] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)  # published by the detectors (models.contracts.report)
    dead: list[DeadLetter] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)  # (kind, region) → valid events, for the metrics
    newest_t: float | None = None  # the latest event time among the valid events


class Ingest:
    """Turns the records of one stream's topic into alerts and dead letters."""

    def __init__(self, stream: str, detectors: list[Unit], pseudonymize: Callable[[str], str],
                 kind_field: str | None = None) -> None:
        self.stream = stream
        self.kind_field = kind_field
        self.detectors = detectors
        self.pseudonymize = pseudonymize
        self._has_patient = stream in ("prescription", "claim")
        self._clocks: dict[int, PartitionClock] = {}  # input partition → its event-time clock

    def handle(self, raw: bytes | None, topic: str, partition: int, offset: int,
               record_time: float | None = None) -> Outcome:
        """Never raises: whatever the record holds ends as judged events and dead letters."""
        return run_to_end(self.stepwise(raw, topic, partition, offset, record_time))

    def stepwise(self, raw: bytes | None, topic: str, partition: int, offset: int,
                 record_time: float | None = None) -> Steps:
        """:meth:`handle` a step of :data:`~models.engine.runtime.STEP_EVENTS` events at a time (the worker gives its
        loop a turn between two while a checkpoint is being written); returns the :class:`Outcome`."""
        try:
            return (yield from self._handle(raw, topic, partition, offset, record_time))
        except Exception as e:  # a case nobody foresaw: the whole record is set aside, with the reason
            log.exception("record %s[%d]@%d could not be processed", topic, partition, offset)
            out = Outcome(read=1, refused=1)
            out.dead.append(DeadLetter(raw, "unprocessable", f"{type(e).__name__} while processing the record"))
            return out

    def _handle(self, raw: bytes | None, topic: str, partition: int, offset: int,
                record_time: float | None = None) -> Steps:
        out = Outcome()
        try:
            events = decode(raw)
        except InvalidRecord as e:
            out.read = out.refused = 1
            out.dead.append(DeadLetter(raw, e.reason, e.detail))
            return out
        whole = len(events) == 1
        out.read = len(events)
        now = datetime.now(timezone.utc)  # one clock reading per record: the plausibility bounds of its events
        for i, event in enumerate(events):
            if i and not i % STEP_EVENTS:
                yield
            try:
                validate(self.stream, event, now)
                clock = self._clocks.get(partition)
                if clock is None:
                    clock = self._clocks[partition] = PartitionClock()
                moves = clock.admit(event["_t"], record_time)
            except InvalidRecord as e:
                value = _refused_value(raw, event, whole)
                out.refused += 1
                out.dead.append(DeadLetter(value, e.reason, e.detail, None if whole else i))
                continue
            except Exception as e:  # nothing an event holds may stop the stream (a value nested too deep …)
                value = _refused_value(raw, event, whole)
                out.refused += 1
                out.dead.append(DeadLetter(value, "unprocessable", f"{type(e).__name__} while validating",
                                           None if whole else i))
                continue
            if not moves:
                event[HOLD_CLOCK] = True
                out.held += 1
            if self._has_patient:
                event["patient"] = self.pseudonymize(event.pop("patient_id"))
            out.events += 1
            out.kinds[(event.get(self.kind_field) if self.kind_field else None, event.get("region"))] += 1
            t = event.get("_t")
            if t is not None and moves and (out.newest_t is None or t > out.newest_t):
                out.newest_t = t
            source = Source(topic, partition, offset, event_id(self.stream, event), record_time)
            for detector in self.detectors:
                try:
                    out.alerts.extend(detector.process(event, source))
                except Exception as e:  # a detector bug must not stop the stream
                    log.exception("detector %s failed on %s offset %d", detector.name, topic, offset)
                    out.dead.append(DeadLetter(_refused_value(raw, event, whole), "detector_error",
                                               f"{detector.name}: {type(e).__name__}", None if whole else i))
                take_reports = getattr(detector, "take_reports", None)  # a runtime's (models.contracts.report)
                if take_reports is not None:
                    out.reports += take_reports()
                failures = getattr(detector, "failures", None)  # a runtime of keyed detectors carries on
                while failures:
                    f = failures.pop(0)
                    log.error("detector %s failed on %s offset %d: %s", f.detector, topic, offset, f)
                    out.dead.append(DeadLetter(_refused_value(raw, event, whole), "detector_error",
                                               f"{f.detector}: {type(f.error).__name__}", None if whole else i))
        return out
