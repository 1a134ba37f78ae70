"""Which detectors run on which stream, built from the settings."""
from __future__ import annotations

from models.base import Detector
from models.claims.card_burst import CardBurstDetector
from models.claims.duplicate_charge import DuplicateChargeDetector
from models.claims.entity_anomaly import EntityAnomalyDetector
from models.claims.impossible_day import ImpossibleDayDetector
from models.claims.over_standard import OverStandardDetector
from models.claims.phantom_bed import PhantomBedDetector
from models.claims.split_admission import SplitAdmissionDetector
from models.claims.unbundling import UnbundlingDetector
from models.coldchain.dynamics import DynamicsDetector
from models.coldchain.excursion import ExcursionDetector
from models.coldchain.sensor_silent import SensorSilentDetector
from models.prescription.controlled_drugs import ControlledDrugDetector
from models.prescription.doctor_shopping import DoctorShoppingDetector
from models.prescription.excess_usage import ExcessUsageDetector
from models.prescription.over_supply import OverSupplyDetector
from models.prescription.same_action import SameActionDetector
from models.prescription.too_many_drugs import TooManyDrugsDetector
from models.waste.category_mismatch import CategoryMismatchDetector
from models.waste.generation_anomaly import GenerationAnomalyDetector
from models.waste.manifest_open import ManifestOpenDetector
from models.waste.storage_overdue import StorageOverdueDetector
from models.waste.weight_discrepancy import WeightDiscrepancyDetector
from streams.settings import Settings


def build_detectors(settings: Settings) -> dict[str, list[Detector]]:
    d = settings.detectors
    parts = settings.topics.input_partitions  # the daily charts wait until every partition is heard from
    return {
        "prescription": [
            OverSupplyDetector(d["prescription.over_supply"]),
            TooManyDrugsDetector(d["prescription.too_many_drugs"]),
            ControlledDrugDetector(d["prescription.controlled_drugs"]),
            SameActionDetector(d["prescription.same_action"]),
            DoctorShoppingDetector(d["prescription.duplicate_overlap"]),
            ExcessUsageDetector(d["prescription.excess_usage"], parts),
        ],
        "claim": [
            DuplicateChargeDetector(d["claim.duplicate_charge"]),
            UnbundlingDetector(d["claim.unbundling"]),
            OverStandardDetector(d["claim.over_standard"]),
            SplitAdmissionDetector(d["claim.split_admission"]),
            PhantomBedDetector(d["claim.phantom_bed"]),
            CardBurstDetector(d["claim.card_misuse"], parts),
            ImpossibleDayDetector(d["claim.impossible_day"]),
            EntityAnomalyDetector(d["claim.entity_anomaly"], parts),
        ],
        "waste": [
            StorageOverdueDetector(d["waste.storage_overdue"]),
            ManifestOpenDetector(d["waste.manifest_not_closed"]),
            WeightDiscrepancyDetector(d["waste.weight_discrepancy"]),
            CategoryMismatchDetector(d["waste.category_mismatch"]),
            GenerationAnomalyDetector(d["waste.generation_anomaly"], parts),
        ],
        "telemetry": [
            ExcursionDetector(d["coldchain.excursion"]),
            SensorSilentDetector(d["coldchain.sensor_silent"]),
            DynamicsDetector(d["coldchain.abnormal_dynamics"]),
        ],
    }
