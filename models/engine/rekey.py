"""Re-keying 重新分区: the events a per-institution, per-prescriber, per-doctor or per-pharmacy detector
needs, moved from the partition of their patient or manifest to the partition of that entity.

The input topics are keyed by patient, manifest or device, so an institution's events are spread
over every partition; with several workers, no worker would see all of them. As Faust's
``group_by`` and Kafka Streams' repartition topics do, the worker that reads an input partition
*forwards* each event a re-keyed detector wants — projected to the fields it uses — to the
partition of a repartition topic chosen by that entity's key; whoever owns that partition holds the
entity's whole state. This module is the pure part (no Kafka): what is forwarded and how it is
received.

* :class:`Forwarder` (at an input partition) buffers projected events per target partition and
  packs them in envelopes. Every envelope also carries the source partition's **watermark** (the
  newest event time read there) and is sent to every target partition at each flush, even empty:
  a target learns how far each source has got although the entity's events come from all of them.
* :class:`Receiver` (at a repartition partition) keeps, per source partition, the newest
  watermark and the last source offset applied. Its event-time watermark is the *slowest*
  source's, so a day, a window or a deadline is closed only when every source partition is past
  it; and an envelope re-sent after a worker died (at-least-once) is recognised by its offsets
  and not counted twice. Both live in the runtime's checkpointed metadata, next to the
  detectors' state.

Each forwarded event carries its input offset and its place in that record (an input record is an
envelope of many events), so "already applied" is exact however the envelopes were cut.

**Idle sources.** Until every source partition has been heard from, the watermark waits — however far the others
have got: a day closed before a slow source's events of it arrived would drop them, and which source is slow
depends on the layout and its timing (the defect of 2026-11-28: during a catch-up one source ran two days ahead of
another not yet heard, an event-time "startup wait" let the days close, the second source's events of them were
late, and a waste chart learned a different normal in each layout). A source that has nothing to send — its input
partition read to its log end, or empty — says so: the worker flushes its forwarder with ``idle=True``. The
receiver leaves out of the slowest-source rule only an idle source that has **never sent an event** (an empty
partition); a source that has sent events holds the watermark at its own, idle or not. (Until 2026-12-06 every
idle source was left out while another was busy. That relied on the idle word staying true, and it does not when
the source's worker dies: the flag stays with the receiver while new records reach the dead worker's partition
and nobody reads them until the group has reassigned it and the heir has restored — seconds, and at the
evaluation's pace days of event time — while the other sources ran on. The days closed without those records,
they came late, and the seed-7 kill run gave eight ``waste.generation_anomaly`` alerts that the one-worker run
did not: ``tests/test_layouts.py`` reproduces it.) The cost: a day closes once every partition that has data is
past it (plus the grace), so a partition quiet for hours delays the days of the others until its next event.

>>> from models.contracts.alert import Source
>>> from models.engine.detector import KeyedDetector
>>> class Busy(KeyedDetector):                 # count each institution's events per day
...     name, version, stream, key, key_field, Limits = "demo.busy", "1", "claim", "institution", "institution_id", dict
...     fields = ("institution_id",)
...     def process(self, ctx, event, source):
...         day = int(event["_t"] // 86400)
...         ctx.state[str(day)] = ctx.state.get(str(day), 0) + 1
...         ctx.set_timer((day + 1) * 86400, str(day))
...         return []
...     def on_timer(self, ctx, tag, t):
...         return [(ctx.key, int(tag), ctx.state.pop(tag))]
>>> fwd = [Forwarder([Busy()], "zhijian.claims", p, targets=2) for p in (0, 1)]
>>> rcv = [Receiver([Busy()], sources=2) for _ in (0, 1)]
>>> def claim(p, offset, inst, t):
...     fwd[p].add({"institution_id": inst, "_t": t}, Source("zhijian.claims", p, offset, f"C{offset}"))
>>> claim(0, 0, "H1", 100.0); claim(0, 1, "H1", 90000.0); claim(1, 0, "H1", 200.0)
>>> def deliver():
...     return [a for f in fwd for target, env in f.flush() for a in rcv[target].receive(env)]
>>> deliver()                                  # source 1 is still on day 0
[]
>>> claim(1, 1, "H2", 90500.0)
>>> deliver()
[('H1', 0, 2)]
>>> rcv[0].watermark(), rcv[0].receive(fwd[1].flush(idle=True)[0][1])   # source 1 read to its end: still
(90000.0, [])
>>> rcv[0].watermark()                         # the slowest that has sent events decides
90000.0
>>> fwd[1] = Forwarder([Busy()], "zhijian.claims", 1, targets=2)   # its worker died; the next one
>>> claim(1, 1, "H2", 90500.0); deliver()      # reads offset 1 again: already applied, not counted
[]
>>> rcv[target_partition("H2", 2)].runtime.store_of("demo.busy", "H2")
{'1': 1}
"""
from __future__ import annotations

import zlib
from typing import Any, Iterable, Mapping

from models.contracts.alert import Alert, Source
from models.engine.detector import EMPTY, KeyedDetector
from models.engine.flood import AlertCap
from models.engine.runtime import HOLD_CLOCK, STEP_EVENTS, PerPartition, Runtime, Steps, run_to_end


def target_partition(key: str, partitions: int) -> int:
    """The repartition topic's partition of an entity key (stable across processes and versions)."""
    return zlib.crc32(key.encode()) % partitions


def projected_fields(detectors: list[KeyedDetector]) -> tuple[str, ...]:
    """The fields an event is cut to before it is forwarded: the event time, a claim's adjustment (the receiving
    runtime hands a correction to versioned detectors only) and every field a detector reads, each once."""
    return tuple(dict.fromkeys(["_t", "adjustment", *(f for d in detectors for f in d.fields)]))


class Forwarder:
    """At one input partition: projected events for the re-keyed detectors of one entity kind, buffered
    per target partition, and the source watermark."""

    def __init__(self, detectors: list[KeyedDetector], topic: str, partition: int, targets: int) -> None:
        self.detectors = detectors
        self.topic = topic
        self.partition = partition
        self.targets = targets
        self.watermark: float | None = None
        self._buffers: dict[int, list[list[Any]]] = {}
        self._sent_watermark: float | None = None
        self._sent_idle: bool | None = None
        self._record = (-1, -1)  # (offset, events of it seen): an event's place in its record
        self._fields = projected_fields(detectors)
        # each detector's key: the event field holding it where it keys by one field (KeyedDetector.key_of not
        # overridden), else the detector (its key_of is called)
        self._keys = [d.key_field if type(d).key_of is KeyedDetector.key_of and d.key_field else d for d in detectors]

    #: Envelopes hold at most this many events (a few hundred kB projected; far below Kafka's record limit).
    MAX_EVENTS = 500

    def add(self, event: dict[str, Any], source: Source) -> None:
        """Note one valid event of this partition; buffer it where a detector wants it."""
        t = event["_t"]
        if (self.watermark is None or t > self.watermark) and not event.get(HOLD_CLOCK):
            self.watermark = t
        offset, index = self._record
        self._record = (offset, index + 1) if offset == source.offset else (source.offset, 0)
        targets = set()
        for k in self._keys:
            key = event.get(k) if type(k) is str else k.key_of(event)
            if key is not None:  # None: not wanted
                targets.add(target_partition(key if type(key) is str else str(key), self.targets))
        if not targets:
            return
        value = {f: event[f] for f in self._fields if f in event}  # cut to what the detectors read
        evidence = [source.offset, self._record[1], source.event_id, source.record_time]
        for target in targets:
            self._buffers.setdefault(target, []).append([*evidence, value])

    def pending(self) -> int:
        return sum(len(b) for b in self._buffers.values())

    def flush(self, idle: bool = False) -> list[tuple[int, dict[str, Any]]]:
        """(target partition, envelope) to send: every buffered event, and — when the watermark moved or the
        source became idle or busy since the last flush — an envelope to every target partition saying so.
        ``idle``: the input partition is read to its log end (see the module)."""
        moved = (self.watermark is not None and self.watermark != self._sent_watermark) or idle != self._sent_idle
        targets = range(self.targets) if moved else sorted(self._buffers)
        out = []
        for target in targets:
            events = self._buffers.pop(target, [])
            chunks = range(0, max(len(events), 1), self.MAX_EVENTS)
            for i in chunks:
                # only the last envelope may carry the new watermark: the receiver must not move past events it
                # has not got yet (the earlier ones carry the watermark already sent)
                last = i == chunks[-1]
                out.append((target, {"topic": self.topic, "source": self.partition,
                                     "watermark": self.watermark if last else self._sent_watermark,
                                     "idle": idle and last, "events": events[i:i + self.MAX_EVENTS]}))
        self._sent_watermark = self.watermark
        self._sent_idle = idle
        return out


class Receiver:
    """At one repartition partition: applies envelopes to a runtime of the re-keyed detectors, once each,
    and moves its watermark to the slowest source's."""

    def __init__(self, detectors: Iterable[KeyedDetector], sources: int, cap: AlertCap | None = None,
                 reference: Mapping[str, Mapping[str, Any]] = EMPTY) -> None:
        self.runtime = Runtime(detectors, external_watermark=True, cap=cap, reference=reference)
        self.sources = sources

    def _heard(self) -> dict[str, list[Any]]:
        # source partition → [watermark, offset and index of the last event applied, idle]
        return self.runtime.meta.setdefault("sources", {})

    def receive(self, envelope: dict[str, Any]) -> list[Alert]:
        """Apply one envelope: the alerts it raised."""
        return run_to_end(self.stepwise(envelope))

    def stepwise(self, envelope: dict[str, Any]) -> Steps:
        """:meth:`receive` a step of :data:`STEP_EVENTS` events at a time (the worker may give its loop a turn
        between two); returns the alerts."""
        heard = self._heard()
        src = str(envelope["source"])
        wm, last_offset, last_index = heard.get(src, [None, -1, -1])[:3]
        alerts: list[Alert] = []
        topic, partition = envelope["topic"], envelope["source"]
        for n, (offset, index, event_id, record_time, event) in enumerate(envelope["events"], 1):
            if (offset, index) <= (last_offset, last_index):
                continue  # forwarded before a worker died, applied already
            last_offset, last_index = offset, index
            alerts += self.runtime.process(event, Source(topic, partition, offset, event_id, record_time))
            if not n % STEP_EVENTS:
                yield
        w = envelope["watermark"]
        if w is not None and (wm is None or w > wm):
            wm = w
        heard[src] = [wm, last_offset, last_index, bool(envelope.get("idle"))]
        self.runtime.touch()
        alerts += self.runtime.advance(self.watermark())
        return alerts

    def watermark(self) -> float:
        """The slowest watermark of the source partitions that have sent an event; −∞ while one has not been
        heard from, or one that has never sent an event is not idle (see "Idle sources" in the module)."""
        heard = self._heard()
        if len(heard) < self.sources:
            return float("-inf")
        marks = [s[0] for s in heard.values() if s[0] is not None or not (len(s) > 3 and s[3])]
        if not marks or None in marks:
            return float("-inf")
        return min(marks)

    # -- what the state store and the checkpoints see: the runtime's

    def changes(self) -> list[tuple[str, str, Any]]:
        return self.runtime.changes()

    def capture(self) -> Any:
        return self.runtime.capture()

    def load(self, name: str, key: str, value: Any) -> None:
        self.runtime.load(name, key, value)

    def __len__(self) -> int:
        return len(self.runtime)


def group_name(stream: str, key: str) -> str:
    """A re-keyed group: the detectors of one stream whose state lives under one entity kind."""
    return f"{stream}-by-{key}"


class Rekeying:
    """All the forwarding of one input stream: a :class:`Forwarder` per (group, input partition)."""

    name = "rekeying"

    def __init__(self, topic: str, groups: dict[str, list[KeyedDetector]], partitions: int) -> None:
        self.topic = topic
        self.groups = groups
        self.partitions = partitions
        self.forwarders: dict[tuple[str, int], Forwarder] = {}

    def process(self, event: dict[str, Any], source: Source) -> list[Alert]:
        """Hand a valid event of an input partition to the forwarders (it raises no alert here)."""
        for group in self.groups:
            f = self.forwarders.get((group, source.partition))
            if f is None:
                f = self._forwarder(group, source.partition)
            f.add(event, source)
        return []

    def _forwarder(self, group: str, partition: int) -> Forwarder:
        f = self.forwarders[(group, partition)] = Forwarder(self.groups[group], self.topic, partition, self.partitions)
        return f

    def own(self, partitions: Iterable[int]) -> None:
        """The input partitions this worker reads: each gets its forwarders now, so that an empty partition too
        tells the receivers it is idle."""
        for p in partitions:
            for group in self.groups:
                if (group, p) not in self.forwarders:
                    self._forwarder(group, p)

    def drop(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        for k in [k for k in self.forwarders if k[1] in gone]:
            del self.forwarders[k]

    def flush(self, idle: Any = lambda partition: False) -> list[tuple[str, int, dict[str, Any]]]:
        """(group, target partition, envelope) of everything to forward now; ``idle(partition)``: whether that input
        partition is read to its log end."""
        out = []
        for (group, partition), f in self.forwarders.items():
            out += [(group, target, env) for target, env in f.flush(idle(partition))]
        return out


class PartitionedReceiver(PerPartition):
    """The :class:`Receiver` of each owned partition of a group's repartition topic."""

    def __init__(self, detectors: list[KeyedDetector], sources: int, cap: AlertCap | None = None,
                 reference: Mapping[str, Mapping[str, Any]] = EMPTY) -> None:
        super().__init__(lambda: Receiver(detectors, sources, cap=cap, reference=reference))
        self.detectors = detectors
        self.sources = sources

    def receive(self, partition: int, envelope: dict[str, Any]) -> list[Alert]:
        return run_to_end(self.stepwise(partition, envelope))

    def stepwise(self, partition: int, envelope: dict[str, Any]) -> Steps:
        """:meth:`receive` a step at a time (:meth:`Receiver.stepwise`)."""
        r = self.task(partition)
        alerts = yield from r.stepwise(envelope)
        self._collect(r.runtime)
        return alerts
