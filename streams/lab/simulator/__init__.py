"""A simulated health region (模拟区域): institutions, prescribers, patients, fridges and waste,
with labelled risk scenarios whose ground truth is kept apart from the events."""
from pathlib import Path

from streams.lab.simulator.region import build_region
from streams.lab.simulator.simulator import RegionSimulator, SimulationConfig

#: The simulated region's dictionaries (price catalogue, packages, licences) as worker configuration.
REGION_CONFIG = Path(__file__).with_name("region.toml")

__all__ = ["REGION_CONFIG", "RegionSimulator", "SimulationConfig", "build_region"]
