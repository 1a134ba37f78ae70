"""Temperature of a vaccine fridge, cold room or vehicle, reading by reading.

A working unit's probe follows the compressor: a slow warm-up while it is off and a quick
pull-down while it runs (a sawtooth around the ~5 °C set-point), small bumps when the door
is opened in working hours, and for cold rooms a defrost bump every eight hours. A unit may also
follow the day (:data:`~streams.lab.simulator.region.RHYTHMS`): a room that warms the fridge in the
afternoon, a clinic-hours load, a defrost timer every six hours — normal operation the dynamics rule
must not alarm on (a noisy probe is the traffic's noise). Faults
replace that profile: a power cut lets the contents warm towards room temperature with a
time constant of hours (a full fridge is a big thermal mass), a thermostat fault pulls them
below zero, and a failing compressor first shows as a slow warming drift. When a fault ends
the unit pulls back to its profile within about an hour.

>>> from streams.lab.simulator.region import Device
>>> dev = Device("FR-1", "fridge", "H301", "310101", 300.0, 2400.0, 1.0, 5.0, 0.0)
>>> unit = Unit(dev)
>>> temps = [unit.reading(t * 300.0, door=0.0, noise=0.0) for t in range(8)]
>>> round(min(temps), 2), round(max(temps), 2)
(4.0, 5.79)
>>> unit.fault = Fault("power_loss", 0.0, 36000.0)
>>> [round(unit.reading(3600.0 * h, 0.0, 0.0), 1) for h in (1, 4, 9)]
[6.4, 14.3, 20.4]
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from streams.lab.simulator.region import Device

AMBIENT_C = 24.0


def rhythm_c(rhythm: str, t: float) -> float:
    """What a daily rhythm adds at ``t`` (°C; the region's local time, UTC+8). Small enough that a working unit
    stays inside 2–8 °C with its compressor swing and a door opening.

    >>> midnight = 1_790_000_000.0 - (1_790_000_000.0 + LOCAL_OFFSET_S) % 86400     # a local midnight
    >>> [round(rhythm_c("afternoon", midnight + 3600 * h), 2) for h in (6, 10, 13, 15, 18, 21)]
    [0.0, 0.0, 0.49, 0.6, 0.35, 0.0]
    >>> rhythm_c("clinic_hours", midnight + 9 * 3600), rhythm_c("defrost_timer", midnight + 600)
    (0.5, 1.2)
    """
    hour = ((t + LOCAL_OFFSET_S) % 86400) / 3600
    if rhythm == "afternoon":  # the room warms from 10:00, most at 15:00, cool again by 20:00
        return 0.6 * math.sin(math.pi * (hour - 10) / 10) if 10 <= hour < 20 else 0.0
    if rhythm == "clinic_hours":  # loaded and opened through the clinic's day, 08:00–17:00
        return 0.5 if 8 <= hour < 17 else 0.0
    if rhythm == "defrost_timer":  # a 20-minute defrost every six hours
        since = (t + LOCAL_OFFSET_S) % (6 * 3600)
        return 1.2 * math.sin(math.pi * since / 1200) if since < 1200 else 0.0
    return 0.0


LOCAL_OFFSET_S = 8 * 3600


@dataclass
class Fault:
    kind: str  # power_loss | compressor_failure | freeze | drift
    start_t: float
    end_t: float
    target_c: float = AMBIENT_C
    drift_c_per_day: float = 0.0


class Unit:
    """State of one device's temperature between readings."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.temp = device.setpoint
        self.last_t: float | None = None
        self.fault: Fault | None = None
        self.drift_c = 0.0  # offset of a failing compressor, kept after the drift fault ends until repair
        self.door_t = -1e18
        self.door_c = 0.0

    def profile(self, t: float) -> float:
        d = self.device
        x = (t / d.cycle_s + d.phase) % 1.0
        wave = -1 + 2 * x / 0.7 if x < 0.7 else 1 - 2 * (x - 0.7) / 0.3  # slow rise, fast pull-down
        temp = d.setpoint + d.amplitude * wave
        if d.kind == "cold_room":
            since_defrost = t % (8 * 3600)
            if since_defrost < 1200:
                temp += 1.2 * math.sin(math.pi * since_defrost / 1200)
        if d.rhythm != "none":
            temp += rhythm_c(d.rhythm, t)
        return temp

    def open_door(self, t: float, rise_c: float) -> None:
        self.door_t, self.door_c = t, rise_c

    def reading(self, t: float, door: float, noise: float) -> float:
        """The probe temperature at ``t`` (``door``: a new door opening's rise in °C, 0 for none)."""
        if door:
            self.open_door(t, door)
        dt = 0.0 if self.last_t is None else max(0.0, t - self.last_t)
        self.last_t = t
        f = self.fault
        if f is not None and f.start_t <= t < f.end_t and f.kind != "drift":
            tau = 3600.0 * (5.0 if f.kind == "power_loss" else 2.0 if f.kind == "compressor_failure" else 0.6)
            self.temp = f.target_c + (self.temp - f.target_c) * math.exp(-dt / tau)
            return self.temp + noise
        if f is not None and f.kind == "drift" and f.start_t <= t < f.end_t:
            self.drift_c = f.drift_c_per_day * (t - f.start_t) / 86400
        normal = self.profile(t) + self.drift_c + self.door_c * math.exp(-(t - self.door_t) / 600.0)
        if abs(self.temp - normal) > 0.3 and f is not None and t >= f.end_t:  # pulling back after a fault
            self.temp = normal + (self.temp - normal) * math.exp(-dt / 1200.0)
        else:
            self.temp = normal
            if f is not None and t >= f.end_t:
                self.fault = None
        return self.temp + noise
