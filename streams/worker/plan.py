"""Which detectors run where, built from the settings (the registry finds them).

Every detector follows the keyed contract (:mod:`models.engine.detector`). Those whose state lives
under the entity the stream's topic is partitioned by (patient, manifest, device) — or that keep
none — run in one :class:`~models.engine.runtime.PartitionedRuntime` per stream, beside the input. The
others are *re-keyed* (:mod:`models.engine.rekey`): the input agent forwards what they need to a
repartition topic per (stream, entity kind), whose agent runs them in a
:class:`~models.engine.rekey.PartitionedReceiver`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connectors.kafka.topics import repartition_name
from models.engine.detector import KeyedDetector
from models.engine.flood import AlertCap
from models.engine.rekey import PartitionedReceiver, Rekeying, group_name
from models.engine.runtime import PartitionedRuntime
from models.rules import registry
from streams.settings import Settings
from streams.worker.reference import ReferenceTables


@dataclass
class Plan:
    units: dict[str, list[Any]] = field(default_factory=dict)  # stream → what Ingest hands each event to
    runtimes: dict[str, PartitionedRuntime] = field(default_factory=dict)  # stream → its input-side runtime
    rekeying: dict[str, Rekeying] = field(default_factory=dict)  # stream → its forwarders
    receivers: dict[str, PartitionedReceiver] = field(default_factory=dict)  # group → its receivers
    group_stream: dict[str, str] = field(default_factory=dict)  # group → the stream it comes from
    reference: ReferenceTables = field(default_factory=ReferenceTables)  # what the worker follows, shared by all


def build_plan(settings: Settings) -> Plan:
    built = registry.build(settings.detectors)
    partitions = settings.topics.input_partitions
    inputs = settings.input_topics()
    plan = Plan()
    cap = alert_cap(settings)
    for stream, detectors in built.items():
        local = [d for d in detectors if isinstance(d, KeyedDetector) and not registry.rekeyed(d)]
        groups: dict[str, list[KeyedDetector]] = {}
        for d in detectors:
            if registry.rekeyed(d):
                groups.setdefault(group_name(stream, d.key), []).append(d)
        units: list[Any] = []
        if local:
            plan.runtimes[stream] = PartitionedRuntime(local, cap, plan.reference)
            units.append(plan.runtimes[stream])
        if groups:
            plan.rekeying[stream] = Rekeying(inputs[stream], groups, partitions)
            units.append(plan.rekeying[stream])
            for group, members in groups.items():
                plan.receivers[group] = PartitionedReceiver(members, partitions, cap, plan.reference)
                plan.group_stream[group] = stream
        plan.units[stream] = units
    return plan


def repartition_topics(settings: Settings, plan: Plan) -> dict[str, str]:
    """group → its repartition topic."""
    return {group: repartition_name(settings.worker.app_id, group) for group in plan.receivers}


def build_detectors(settings: Settings, reference: ReferenceTables | None = None) -> dict[str, list[Any]]:
    """In one process over one ordered partition (tests, lab tools): every detector of a stream in one
    runtime, re-keyed or not — with a single partition, the event time read is every source's."""
    built = registry.build(settings.detectors)
    cap = alert_cap(settings)
    tables = reference if reference is not None else ReferenceTables()
    return {stream: [PartitionedRuntime(detectors, cap, tables)] for stream, detectors in built.items()}


def alert_cap(settings: Settings) -> AlertCap | None:
    """The per-entity hourly alert cap of ``[worker] alert_cap_per_hour`` (0: none)."""
    n = settings.worker.alert_cap_per_hour
    return AlertCap(per_hour=n) if n > 0 else None
