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
envelope of many events), so "already applied" is exact however the envelopes were cut. Until every source partition has been heard from, the watermark waits (at most
``startup_wait_s`` of event time, for a source partition that never receives anything).

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
>>> fwd[1] = Forwarder([Busy()], "zhijian.claims", 1, targets=2)   # its worker died; the next one
>>> claim(1, 1, "H2", 90500.0); deliver()      # reads offset 1 again: already applied, not counted
[]
>>> rcv[target_partition("H2", 2)].runtime.store_of("demo.busy", "H2")
{'1': 1}
"""
from __future__ import annotations

import zlib
from typing import Any, Iterable

from models.contracts.alert import Alert, Source
from models.engine.detector import KeyedDetector
from models.engine.flood import AlertCap
from models.engine.runtime import HOLD_CLOCK, PerPartition, Runtime

#: How long the watermark waits for a source partition never heard from (event time): a worker's
#: first fetches may bring a day of one partition before another's first record.
STARTUP_WAIT_S = 2 * 86400.0


def target_partition(key: str, partitions: int) -> int:
    """The repartition topic's partition of an entity key (stable across processes and versions)."""
    return zlib.crc32(key.encode()) % partitions


def project(detectors: list[KeyedDetector], event: dict[str, Any]) -> dict[str, Any]:
    """The event cut to the fields the detectors use (their ``fields``, and the event time)."""
    out = {"_t": event["_t"]}
    for d in detectors:
        for f in d.fields:
            if f in event:
                out[f] = event[f]
    return out


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
        self._record = (-1, -1)  # (offset, events of it seen): an event's place in its record

    #: Envelopes hold at most this many events (a few hundred kB projected; far below Kafka's record limit).
    MAX_EVENTS = 500

    def add(self, event: dict[str, Any], source: Source) -> None:
        """Note one valid event of this partition; buffer it where a detector wants it."""
        t = event["_t"]
        if (self.watermark is None or t > self.watermark) and not event.get(HOLD_CLOCK):
            self.watermark = t
        offset, index = self._record
        self._record = (offset, index + 1) if offset == source.offset else (source.offset, 0)
        keys = {d.key_of(event) for d in self.detectors}  # None: not wanted
        keys.discard(None)
        if not keys:
            return
        value = project(self.detectors, event)
        evidence = [source.offset, self._record[1], source.event_id, source.record_time]
        for target in {target_partition(k, self.targets) for k in keys}:
            self._buffers.setdefault(target, []).append([*evidence, value])

    def pending(self) -> int:
        return sum(len(b) for b in self._buffers.values())

    def flush(self) -> list[tuple[int, dict[str, Any]]]:
        """(target partition, envelope) to send: every buffered event, and — when the watermark moved
        since the last flush — an envelope to every target partition carrying it."""
        moved = self.watermark is not None and self.watermark != self._sent_watermark
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
                                     "events": events[i:i + self.MAX_EVENTS]}))
        self._sent_watermark = self.watermark
        return out


class Receiver:
    """At one repartition partition: applies envelopes to a runtime of the re-keyed detectors, once each,
    and moves its watermark to the slowest source's."""

    def __init__(self, detectors: Iterable[KeyedDetector], sources: int, startup_wait_s: float = STARTUP_WAIT_S,
                 cap: AlertCap | None = None) -> None:
        self.runtime = Runtime(detectors, external_watermark=True, cap=cap)
        self.sources = sources
        self.startup_wait_s = startup_wait_s

    def _heard(self) -> dict[str, list[Any]]:
        # source partition → [watermark, offset and index of the last event applied]
        return self.runtime.meta.setdefault("sources", {})

    def receive(self, envelope: dict[str, Any]) -> list[Alert]:
        heard = self._heard()
        src = str(envelope["source"])
        wm, last_offset, last_index = heard.get(src, [None, -1, -1])
        alerts: list[Alert] = []
        topic, partition = envelope["topic"], envelope["source"]
        for offset, index, event_id, record_time, event in envelope["events"]:
            if (offset, index) <= (last_offset, last_index):
                continue  # forwarded before a worker died, applied already
            last_offset, last_index = offset, index
            alerts += self.runtime.process(event, Source(topic, partition, offset, event_id, record_time))
        w = envelope["watermark"]
        if w is not None and (wm is None or w > wm):
            wm = w
        if "first" not in self.runtime.meta and wm is not None:
            self.runtime.meta["first"] = wm
        heard[src] = [wm, last_offset, last_index]
        self.runtime.touch()
        alerts += self.runtime.advance(self.watermark())
        return alerts

    def watermark(self) -> float:
        """The slowest source partition's watermark (−∞ while one has not been heard from, for a while)."""
        marks = [wm for wm, _, _ in self._heard().values() if wm is not None]
        if not marks:
            return float("-inf")
        if len(marks) < self.sources and max(marks) - self.runtime.meta.get("first", max(marks)) < self.startup_wait_s:
            return float("-inf")
        return min(marks)

    # -- what the state store and the checkpoints see: the runtime's

    def changes(self) -> list[tuple[str, str, Any]]:
        return self.runtime.changes()

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
        for group, detectors in self.groups.items():
            f = self.forwarders.get((group, source.partition))
            if f is None:
                f = self.forwarders[(group, source.partition)] = Forwarder(detectors, self.topic, source.partition,
                                                                           self.partitions)
            f.add(event, source)
        return []

    def drop(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        for k in [k for k in self.forwarders if k[1] in gone]:
            del self.forwarders[k]

    def flush(self) -> list[tuple[str, int, dict[str, Any]]]:
        """(group, target partition, envelope) of everything to forward now."""
        return [(group, target, env) for (group, _), f in self.forwarders.items() for target, env in f.flush()]


class PartitionedReceiver(PerPartition):
    """The :class:`Receiver` of each owned partition of a group's repartition topic."""

    def __init__(self, detectors: list[KeyedDetector], sources: int, cap: AlertCap | None = None) -> None:
        super().__init__(lambda: Receiver(detectors, sources, cap=cap))
        self.detectors = detectors
        self.sources = sources

    def receive(self, partition: int, envelope: dict[str, Any]) -> list[Alert]:
        r = self.task(partition)
        alerts = r.receive(envelope)
        self._collect(r.runtime)
        return alerts
