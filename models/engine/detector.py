"""The detector contract 检测器契约: state under a key, kept in a store the runtime hands over,
and event-time timers the runtime fires.

A detector names the entity its state lives under (``key``: patient, institution, prescriber,
doctor, pharmacy, device, manifest, carrier, facility) and how to read that key from an event
(``key_of``). For each event the runtime (:mod:`models.engine.runtime`) gives it a :class:`Context`:
the key, that key's state — a plain dict of JSON values, which the runtime snapshots, restores
and expires — the event-time watermark, and ``set_timer`` / ``cancel_timer``. A timer fires
``on_timer`` once the watermark has passed its time: a storage deadline, a transport window, a
logger's silence, the close of a day. The detector keeps no state of its own, so it can be
snapshotted mid-stream, restored elsewhere, and split across partitions and workers by its key.

Rules for a detector's state, so the runtime can write it to a changelog and read it back:
JSON values only (dicts with string keys, lists, str, int, float, bool, None); a
:class:`~models.contracts.alert.Source` is kept as ``list(source)`` and read back with ``Source(*kept)``.
A state that becomes empty (``{}``) with no timer pending is dropped, and so is one untouched
for ``retention_s`` seconds of event time. A detector that judges each event alone declares
``key = None``: it gets an empty state that is not kept, and sets no timers.

``ctx.reference`` is the reference data the worker follows (``ctx.reference["inventory"][device]``:
the stock of a cold-chain device), read-only and possibly empty. The stock only enriches an alert (the lots at
risk); the watch lists (:mod:`models.rules.watchlist`) decide stricter limits, so an alert that rests on one
depends on when its entry reached the worker — a regulator's decision applies from when it is made.

A detector that judges a period (a month's ranking, a month's rates) may also ``ctx.publish`` a
:class:`~models.contracts.report.Report` of every key's figures, alert or not: the runtime collects them
(``Runtime.take_reports``) and the worker writes them to ``zhijian.reports``.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, ClassVar, Mapping

from models.contracts.alert import Alert, Source
from models.contracts.report import Report

#: No reference data.
EMPTY: Mapping[str, Mapping[str, Any]] = MappingProxyType({})

#: The entities detector state can live under.
ENTITY_KINDS = ("patient", "institution", "department", "prescriber", "doctor", "pharmacy", "device", "manifest",
                "carrier", "facility")


class Context:
    """What a detector sees of the runtime for one key: its state, the watermark, its timers."""

    __slots__ = ("key", "state", "watermark", "_timers", "set_now", "reference", "_outbox")

    def __init__(self, key: str, state: dict[str, Any], watermark: float, timers: dict[str, float],
                 reference: Mapping[str, Mapping[str, Any]] = EMPTY, outbox: list[Report] | None = None) -> None:
        self.key = key
        self._outbox = outbox  # the runtime's reports (None: published reports are dropped)
        self.reference = reference
        self.state = state
        self.watermark = watermark
        self._timers = timers  # tag → event time, for this key (the runtime's own record)
        self.set_now: list[tuple[str, float]] = []  # timers set during this call, for the runtime to schedule

    def set_timer(self, t: float, tag: str = "") -> None:
        """Call ``on_timer(ctx, tag, t)`` once the watermark passes ``t`` (replaces this key's timer ``tag``)."""
        self._timers[tag] = float(t)
        self.set_now.append((tag, float(t)))

    def cancel_timer(self, tag: str = "") -> None:
        self._timers.pop(tag, None)

    def timer(self, tag: str = "") -> float | None:
        return self._timers.get(tag)

    def publish(self, report: Report) -> None:
        """Publish a period's figures (not an alert): the worker writes them to ``zhijian.reports``."""
        if self._outbox is not None:
            self._outbox.append(report)


class KeyedDetector:
    """Base of detectors whose state the runtime keeps (see the module's docstring)."""

    name: ClassVar[str]
    version: ClassVar[str]
    stream: ClassVar[str]
    Limits: ClassVar[type]
    key: ClassVar[str | None]  # one of ENTITY_KINDS; None: no state (each event judged alone)
    key_field: ClassVar[str | None] = None  # the event field holding the key (override key_of for more)
    retention_s: ClassVar[float] = 7 * 86400.0  # a key untouched this long in event time is forgotten
    #: True when an alert's last evidence record is not the record that raises it — a condition confirmed by
    #: later events (an excursion open long enough); detectors that judge on a timer are so by nature. The bench
    #: measures their event→alert time apart (it includes the wait for the confirming event).
    raised_after_evidence: ClassVar[bool] = False
    #: The event fields it reads: what is forwarded to it when its key is not the stream's partition key
    #: (see :mod:`models.engine.rekey`); the event time ``_t`` always travels.
    fields: ClassVar[tuple[str, ...]] = ()
    #: Whether it judges a claim by its latest version (:mod:`models.rules.claims.versions`): it takes back what a
    #: replaced or voided version contributed. A detector that does not is handed originals only — a correction
    #: (``adjustment`` replacement or void) is not judged again as a new claim (it would count twice).
    versioned: ClassVar[bool] = False

    def __init__(self, limits: Any = None) -> None:
        self.limits = limits if limits is not None else self.Limits()

    def key_of(self, event: dict[str, Any]) -> str | None:
        """The key this event's state lives under; None when the detector has nothing to do with it."""
        value = event.get(self.key_field) if self.key_field else None
        return None if value is None else str(value)

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        raise NotImplementedError

    def on_timer(self, ctx: Context, tag: str, t: float) -> list[Alert]:
        return []

    @classmethod
    def _conformance_params(cls) -> dict[str, Any]:
        """How the conformance suite exercises this detector, as river's ``_unit_test_params`` says how its
        checks build an estimator: the fields of :class:`models.engine.conformance.Params` (``days`` of the
        simulated region, ``own_scenarios`` for a pattern that takes weeks to show, ``excluded`` for a rule that
        reads the watch lists). Override it where the defaults would prove little."""
        return {}
