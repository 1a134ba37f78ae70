"""The simulated region 模拟区域: its honest traffic (:mod:`streams.lab.simulator.traffic`) with the labelled
risk scenarios and benign look-alikes (:mod:`streams.lab.simulator.scenarios`) placed over the horizon.

>>> sim = RegionSimulator(SimulationConfig(seed=3, days=2, scale=0.2))
>>> events = list(sim.until(sim.t0 + 2 * 86400))
>>> len(sim.truth) > 0 and all(i["scenario"] for i in sim.truth)
True
"""
from __future__ import annotations

from streams.lab.simulator.region import Region
from streams.lab.simulator.scenarios import schedule
from streams.lab.simulator.traffic import RegionTraffic, SimulationConfig

__all__ = ["RegionSimulator", "SimulationConfig"]


class RegionSimulator(RegionTraffic):
    """The region's traffic with every enabled scenario placed (``config.scenarios``; ``()`` for clean traffic)."""

    def __init__(self, config: SimulationConfig | None = None, region: Region | None = None) -> None:
        super().__init__(config, region)
        schedule(self)
