"""Which detectors run on which stream, built from the settings."""
from __future__ import annotations

from models.base import Detector
from models.claims.duplicate_charge import DuplicateChargeDetector
from models.coldchain.excursion import ExcursionDetector
from models.prescription.over_supply import OverSupplyDetector
from models.waste.storage_overdue import StorageOverdueDetector
from streams.settings import Settings


def build_detectors(settings: Settings) -> dict[str, list[Detector]]:
    d = settings.detectors
    return {
        "prescription": [OverSupplyDetector(d["prescription.over_supply"])],
        "claim": [DuplicateChargeDetector(d["claim.duplicate_charge"])],
        "waste": [StorageOverdueDetector(d["waste.storage_overdue"])],
        "telemetry": [ExcursionDetector(d["coldchain.excursion"])],
    }
