"""A simulated health region (模拟区域): institutions, prescribers, patients, fridges and waste,
with labelled risk scenarios whose ground truth is kept apart from the events."""
from connectors.simulator.simulator import RegionSimulator, SimulationConfig

__all__ = ["RegionSimulator", "SimulationConfig"]
