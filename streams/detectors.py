"""Which detectors run on which stream, built from the settings (the registry finds them).

Detectors written to the keyed contract (:mod:`models.detector`) run inside one
:class:`~models.runtime.PartitionedRuntime` per stream, which keeps their state per key and
partition and fires their timers; the others still keep their own state.
"""
from __future__ import annotations

from typing import Any

from models import registry
from models.detector import KeyedDetector
from models.runtime import PartitionedRuntime
from streams.settings import Settings


def build_detectors(settings: Settings) -> dict[str, list[Any]]:
    # the daily charts wait until every partition is heard from, so they are told the partition count
    built = registry.build(settings.detectors, settings.topics.input_partitions)
    out: dict[str, list[Any]] = {}
    for stream, detectors in built.items():
        keyed = [d for d in detectors if isinstance(d, KeyedDetector)]
        out[stream] = [d for d in detectors if not isinstance(d, KeyedDetector)]
        if keyed:
            out[stream].append(PartitionedRuntime(keyed))
    return out
