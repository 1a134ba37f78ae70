"""The event-time watermark over a stream's partitions: how far every partition has got.

An entity's events reach a detector from several partitions read at uneven speeds; a day, a
window or a deadline is past only when the slowest partition is past it. Given the stream's
partition count, the watermark stays at −∞ until every partition has been heard from — a
worker's first fetches can bring a day of one partition before the others — or until
``startup_wait_s`` of event time has passed (a worker that owns only some partitions).

>>> w = PartitionWatermark(partitions=2, startup_wait_s=86400)
>>> w.observe(0, 1000.0), w.observe(0, 5000.0)
(-inf, -inf)
>>> w.observe(1, 3000.0)
3000.0
>>> PartitionWatermark().observe(3, 42.0)        # no count given: the partitions seen so far
42.0
"""
from __future__ import annotations


class PartitionWatermark:
    def __init__(self, partitions: int | None = None, startup_wait_s: float = 2 * 86400.0) -> None:
        self.partitions = partitions
        self.startup_wait_s = startup_wait_s
        self._newest: dict[int, float] = {}
        self._first_t: float | None = None

    def observe(self, partition: int, t: float) -> float:
        """Note an event of ``partition`` at event time ``t``; return the watermark."""
        if self._first_t is None:
            self._first_t = t
        if t > self._newest.get(partition, float("-inf")):
            self._newest[partition] = t
        return self.value

    @property
    def value(self) -> float:
        if not self._newest:
            return float("-inf")
        if self.partitions and len(self._newest) < self.partitions and self._first_t is not None:
            if max(self._newest.values()) - self._first_t < self.startup_wait_s:
                return float("-inf")  # some partition has not been heard from yet: wait for it
        return min(self._newest.values())
