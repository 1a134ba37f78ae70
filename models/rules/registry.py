"""The registry of detectors 检测规则目录: found in their modules, not listed by hand.

Every module under ``models/prescription``, ``models/claims``, ``models/waste`` and
``models/coldchain`` that defines a detector class — one with ``name`` (also its configuration
section), ``stream``, ``Limits`` (the dataclass of its thresholds) and ``process`` — is a detector
of the worker. Adding a detector is adding its module (and its test): the settings, the worker
and the documentation tables all read this registry.

>>> names = [d.name for d in detector_classes()]
>>> len(names), names[0], "coldchain.excursion" in names
(39, 'prescription.antimicrobial_departments', True)
>>> sections()["coldchain.excursion"].__name__
'ExcursionLimits'
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cache
from typing import Any, Callable

from models.engine.detector import KeyedDetector
from models.engine.rekey import group_name

STREAMS = ("prescription", "claim", "waste", "telemetry")
#: The entity each stream's topic is partitioned by: detectors keyed by it run where the events are read;
#: detectors keyed by another entity are re-keyed through a repartition topic (:mod:`models.engine.rekey`).
PARTITION_ENTITY = {"prescription": "patient", "claim": "patient", "waste": "manifest", "telemetry": "device"}
#: The event field holding that entity once the worker has read the event (the patient's pseudonym, ``patient``).
PARTITION_FIELD = {"prescription": "patient", "claim": "patient", "waste": "manifest_id", "telemetry": "device_id"}
PACKAGES = ("models.rules.prescription", "models.rules.claims", "models.rules.waste", "models.rules.coldchain")


def _is_detector(obj: Any, module: str) -> bool:
    return (inspect.isclass(obj) and obj.__module__ == module and isinstance(getattr(obj, "name", None), str)
            and getattr(obj, "stream", None) in STREAMS and inspect.isclass(getattr(obj, "Limits", None))
            and callable(getattr(obj, "process", None)))


@cache
def detector_classes() -> tuple[type, ...]:
    """Every detector class, by stream (prescription, claim, waste, telemetry) then name."""
    found = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package_name}.{info.name}")
            found += [obj for _, obj in inspect.getmembers(module, lambda o: _is_detector(o, module.__name__))]
    names = [d.name for d in found]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise RuntimeError(f"two detectors share the name(s) {sorted(duplicates)}")
    return tuple(sorted(found, key=lambda d: (STREAMS.index(d.stream), d.name)))


def sections() -> dict[str, type]:
    """Configuration section → the dataclass of its thresholds (``[coldchain.excursion]`` → ExcursionLimits)."""
    return {d.name: d.Limits for d in detector_classes()}


def build(configs: dict[str, Any]) -> dict[str, list[Any]]:
    """One instance of every detector with its configuration, grouped by stream."""
    out: dict[str, list[Any]] = {s: [] for s in STREAMS}
    for cls in detector_classes():
        out[cls.stream].append(cls(configs[cls.name]))
    return out


def groups() -> dict[str, str]:
    """Re-keyed group (``claim-by-doctor``) → its stream, for every detector keyed by another entity than
    its stream's partition key."""

    return {group_name(d.stream, d.key): d.stream for d in detector_classes() if rekeyed(d)}


def partition_key(stream: str) -> Callable[[dict[str, Any]], str]:
    """The key a stream's topic is partitioned by, read from an event.

    >>> partition_key("waste")({"manifest_id": "M1", "event_type": "generated"})
    'M1'
    """
    field = PARTITION_FIELD[stream]
    return lambda event: str(event[field])


def rekeyed(detector: Any) -> bool:
    """Whether the detector's state lives under another entity than its stream's partition key."""
    key = getattr(detector, "key", None)
    return key is not None and key != PARTITION_ENTITY[detector.stream]


def judges_later(detector: Any) -> bool:
    """Whether a detector's alerts are raised by something later than their last evidence record: it judges on a
    timer (a day closed, a deadline passed, a logger silent) or on a confirming event (``raised_after_evidence``)."""
    return detector.on_timer is not KeyedDetector.on_timer or detector.raised_after_evidence


def raised_late(stream: str) -> frozenset[str]:
    """The detectors of ``stream`` whose alerts may come after the records that raise them are committed: the
    re-keyed ones (their events travel through a repartition topic) and those that judge later
    (:func:`judges_later`)."""
    return frozenset(c.name for c in detector_classes() if c.stream == stream and (rekeyed(c) or judges_later(c)))
