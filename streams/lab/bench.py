"""`zhijian bench`: throughput and event-to-alert latency of the worker on the embedded broker,
beside a raw aiokafka ``getmany()`` + orjson consumer reading the same topics in the same run.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from connectors.errors import ZhijianError
from connectors.kafka.broker import EmbeddedBroker, ensure_topics, free_port
from connectors.kafka.follower import Tail, read_topics
from connectors.kafka.producer import EnvelopeProducer, build_envelopes, partition_for
from streams.lab.evaluate import drained
from streams.lab.processes import (ensure_run_key, peak_rss_mib, simulated_region_configs, start_worker_process,
                                   stop_process)
from models.engine.flood import AlertCap
from models.rules import registry
from streams.lab.simulator import RegionSimulator, SimulationConfig, build_region
from streams.settings import load_settings

STATE_DIR = Path(".zhijian")


#: Gauges whose figure over several workers is the largest, not the sum.
MAXIMA = ("zhijian_checkpoint_longest_seconds", "zhijian_checkpoint_longest_pause_seconds",
          "zhijian_heap_release_longest_seconds")


def scrape(port: int) -> dict[str, float]:
    """Sum of each zhijian_* sample family on the worker's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("zhijian_"):
            name, value = line.rsplit(" ", 1)
            out[name.split("{")[0]] = out.get(name.split("{")[0], 0.0) + float(value)
    return out


def closing_detectors() -> set[str]:
    """Detectors that judge on a timer (a day closed, a deadline passed, a logger silent), those whose alerts are
    confirmed by later events (``raised_after_evidence``) and the flood cap's summaries: their alerts are raised by
    a later event than their last evidence record, so their event→alert time includes that wait."""
    return {cls.name for cls in registry.detector_classes() if registry.judges_later(cls)} | {AlertCap.name}


def about_an_absence(alert: dict[str, Any], closing: set[str]) -> bool:
    """Whether an alert record is raised by something later than its last evidence record: a detector that judges
    later (:func:`closing_detectors`), or an episode closed because its device fell silent (``ended_by_gap``: the
    reading after the gap closes it, the evidence ends with the last one before).

    >>> closing = {"coldchain.excursion"}
    >>> about_an_absence({"detector": "coldchain.excursion", "numbers": {}}, closing)
    True
    >>> [about_an_absence({"detector": "coldchain.device_status", "numbers": n}, closing)
    ...  for n in ({"condition": "door_open"}, {"condition": "door_open", "ended_by_gap": True})]
    [False, True]
    """
    return alert["detector"] in closing or bool((alert.get("numbers") or {}).get("ended_by_gap"))


def quantile(values: list[float], p: float) -> float:
    """The p-quantile of sorted values (nan for none).

    >>> quantile([0.1, 0.2, 0.3, 0.4], 0.5), quantile([], 0.99) != quantile([], 0.99)
    (0.3, True)
    """
    return values[min(len(values) - 1, int(p * len(values)))] if values else float("nan")


def _count(port: int) -> float:
    m = scrape(port)
    return m.get("zhijian_events_total", 0) + m.get("zhijian_invalid_records_total", 0)


def wait_for_events(port: int, n: int, timeout: float, proc: subprocess.Popen[bytes],
                    log: Path = STATE_DIR / "bench-worker.log", hint: str = "") -> float:
    """Wait until the worker on ``port`` has counted ``n`` events (valid or refused); the time it did."""

    deadline = time.monotonic() + timeout
    done = 0.0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ZhijianError(f"the worker exited with code {proc.returncode}; see {log}")
        try:
            done = _count(port)
            if done >= n:
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.05)
    raise ZhijianError(f"the worker processed {done:.0f} of {n} events in {timeout:g} s; see {log}{hint}")


async def raw_reference(bootstrap: str, topics: list[str], n: int) -> dict[str, Any]:
    """A bare aiokafka consumer: getmany() + orjson.loads, counting events (envelopes unpacked)."""

    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    count = 0
    start = None
    try:
        while count < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=100_000)
            if start is None and batches:
                start = time.monotonic()
            for records in batches.values():
                for r in records:
                    v = orjson.loads(r.value)
                    count += len(v) if isinstance(v, list) else 1
        elapsed = time.monotonic() - (start or time.monotonic())
    finally:
        await consumer.stop()
    return {"events": count, "seconds": elapsed, "events_per_s": count / elapsed if elapsed else float("nan")}


def _wait_assigned(ports: list[int], workers: list[Any], expected: int, timeout: float) -> None:
    """Until every worker owns some partitions and together all ``expected`` of them (inputs and repartition)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(w.poll() is not None for w in workers):
            raise RuntimeError(f"a worker exited; see {STATE_DIR}/bench-worker-*.log")
        try:
            owned = [scrape(p).get("zhijian_assigned_partitions", 0.0) for p in ports]
        except OSError:
            owned = []
        if owned and all(o > 0 for o in owned) and sum(owned) == expected:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the workers did not share the partitions in {timeout:g} s; see {STATE_DIR}/bench-worker-*.log")


def state_figures(settings: Any) -> dict[str, Any]:
    """Keys and bytes held in the state changelogs (the latest record of each key, tombstones dropped)."""

    latest: dict[tuple[str, bytes], int] = {}
    changelogs = [spec.name for spec in settings.internal_topic_specs() if spec.compacted]
    for r in read_topics(settings.kafka, changelogs):
        k = (r.topic, r.key)
        if r.value is None:
            latest.pop(k, None)
        else:
            latest[k] = len(r.key) + len(r.value)
    by: dict[str, dict[str, float]] = {}
    for (_, key), size in latest.items():
        d = by.setdefault(key.split(b"\x1f")[0].decode(), {"keys": 0, "bytes": 0})
        d["keys"] += 1
        d["bytes"] += size
    for d in by.values():
        d["bytes_per_key"] = round(d["bytes"] / d["keys"], 1)
    total = sum(latest.values())
    return {"keys": len(latest), "bytes": total, "bytes_per_key": round(total / max(1, len(latest)), 1),
            "by_detector": by}


def _restore(bootstrap: str, configs: list[str], producer: Any, paced: list[Any], topics: dict[str, str],
             parts: int, expected: int) -> dict[str, float]:
    """A fresh worker takes every partition over; a few records wake each one; the time its restores took."""

    port = free_port()
    started = time.monotonic()
    worker = start_worker_process(bootstrap, port, STATE_DIR / "bench-worker-restore.log", configs)
    try:
        _wait_assigned([port], [worker], expected, 180)
        # one event again on every input partition (no new alert): each partition's first record restores its state

        wake: dict[tuple[str, int], Any] = {}
        for item in paced:
            wake.setdefault((item[0], partition_for(item[1], parts)), item)
        for envelope in build_envelopes(list(wake.values()), topics, parts, 50):
            producer.send_envelope(*envelope)
        producer.flush()
        first, last, stable_since = None, -1.0, time.monotonic()
        deadline = time.monotonic() + 300
        while time.monotonic() - stable_since < 3 and time.monotonic() < deadline:
            m = scrape(port)
            if first is None and m.get("zhijian_events_total", 0) > 0:
                first = time.monotonic() - started
            if m.get("zhijian_state_restored_records_total", 0) != last:
                last, stable_since = m.get("zhijian_state_restored_records_total", 0), time.monotonic()
            time.sleep(0.1)
        return {"records": int(last), "seconds": round(m.get("zhijian_state_restore_seconds_spent_total", 0.0), 3),
                "first_event_seconds": round(first or float("nan"), 2)}
    finally:
        stop_process(worker)


def run_bench(args: argparse.Namespace) -> int:
    """Start the workers, preload N events and time their draining; measure latency at a steady rate; then the
    state's size, and the time a fresh worker takes to restore it."""

    STATE_DIR.mkdir(exist_ok=True)
    print(ensure_run_key(), flush=True)
    bench = Bench(args)
    with EmbeddedBroker(log_path=STATE_DIR / "bench-broker.log") as broker:
        bench.on(broker)
        try:
            bench.start_workers()
            bench.drain()
            bench.settle()
            bench.paced_phase()
            bench.collect()
        finally:
            bench.stop_workers()
        bench.after(broker)
    result = bench.result()
    print_result(result, args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def _generate(sim: Any, count: int) -> list[Any]:
    out: list[Any] = []
    horizon = sim.t0
    while len(out) < count:
        horizon += 3600
        out.extend(sim.until(horizon))
    return out[:count]


class Bench:
    """One bench run's phases and what they measured."""

    def __init__(self, args: argparse.Namespace) -> None:

        self.args = args
        self.n, self.rate, self.paced_s = args.events, args.latency_rate, args.latency_seconds
        print(f"generating {self.n} + {int(self.rate * self.paced_s)} events …", flush=True)
        # the preload is a region as the evaluation simulates it; the paced phase follows it in time with
        # risks planted 100× as often, so that enough alerts come out to measure their latency
        self.preload = _generate(RegionSimulator(SimulationConfig(seed=11, days=60)), self.n)
        after = datetime.fromisoformat(self.preload[-1][2]["event_time"]) + timedelta(hours=1)
        self.paced = _generate(RegionSimulator(SimulationConfig(seed=12, days=2, start=after, scenario_rate=100,
                                                                warmup_days=0)), int(self.rate * self.paced_s))
        self.figures: dict[str, Any] = {}
        self.workers: list[Any] = []

    def on(self, broker: Any) -> None:

        self.broker = broker
        self.settings = s = load_settings(overrides={"kafka": {"bootstrap_servers": broker.bootstrap_servers}})
        ensure_topics(s.kafka, s.topic_specs())
        self.topics = s.input_topics()
        self.parts = s.topics.input_partitions
        self.producer = EnvelopeProducer(s.kafka, self.topics, self.parts, max_batch=self.args.batch)
        self.configs = simulated_region_configs(None, build_region(11), STATE_DIR)  # the preload's region
        self.repartition = [spec.name for spec in s.internal_topic_specs() if spec.name.endswith("-repartition")]
        self.expected = (len(self.topics) + len(self.repartition)) * self.parts  # partitions the group shares

    def count(self) -> float:
        total = 0.0
        for port in self.ports:
            try:
                total += _count(port)
            except OSError:
                pass
        return total

    def start_workers(self) -> None:
        """The workers join their group before the preload, so that N of them share it from its first record."""

        n = self.args.workers
        self.ports = [free_port() for _ in range(n)]
        started = time.monotonic()
        self.workers = [start_worker_process(self.broker.bootstrap_servers, port, STATE_DIR / f"bench-worker-{i}.log",
                                             self.configs) for i, port in enumerate(self.ports)]
        print(f"starting {n} worker(s) and waiting until they share the partitions …", flush=True)
        _wait_assigned(self.ports, self.workers, self.expected, 180)
        self.figures["join_s"] = time.monotonic() - started

    def drain(self) -> None:
        """The preload sent, timed from its first record until every record of every consumed topic is
        committed (the re-keyed detectors run on the repartition topics, behind the inputs)."""

        envelopes = build_envelopes(self.preload, self.topics, self.parts, self.args.batch)
        print(f"preloading {self.n} events in {len(envelopes)} records …", flush=True)
        t0 = time.monotonic()
        for envelope in envelopes:
            self.producer.send_envelope(*envelope)
        self.producer.flush()
        self.figures["produce_s"] = time.monotonic() - t0
        deadline = time.monotonic() + 600
        while self.count() < self.n:  # the workers read while the preload is written
            if any(w.poll() is not None for w in self.workers) or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not drain; see {STATE_DIR}/bench-worker-*.log")
            time.sleep(0.02)
        self.figures["inputs_s"] = time.monotonic() - t0
        consumed = list(self.topics.values()) + self.repartition
        while not drained(self.settings.kafka, self.settings.worker.app_id, consumed)[0]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the repartition topics did not drain; see {STATE_DIR}/bench-worker-*.log")
            time.sleep(0.1)
        self.figures["drain_s"] = time.monotonic() - t0

    def settle(self) -> None:
        """The checkpoint that follows a burst (one changelog record per key the preload touched): let it
        finish, and report it, so the paced phase measures steady flow."""
        settle_start, last, stable_since = time.monotonic(), -1.0, time.monotonic()
        while time.monotonic() - settle_start < 60 and time.monotonic() - stable_since < 2:
            written = sum(scrape(port).get("zhijian_checkpoint_records_total", 0.0) for port in self.ports)
            if written != last:
                last, stable_since = written, time.monotonic()
            time.sleep(0.1)
        self.figures["settle_s"] = max(0.0, stable_since - settle_start)
        self.figures["checkpoint_records"] = last
        print(f"state checkpointed through the preload: {last:.0f} changelog records in all, settled "
              f"{self.figures['settle_s']:.1f} s after the drain", flush=True)

    def paced_phase(self) -> None:

        batch = self.args.latency_batch
        print(f"latency phase: {self.rate:g} events/s for {self.paced_s:g} s in envelopes of {batch} …", flush=True)
        self.phase_start = time.time()
        step = batch / self.rate
        t_next = time.monotonic()
        for i in range(0, len(self.paced), batch):
            for envelope in build_envelopes(self.paced[i:i + batch], self.topics, self.parts, batch):
                self.producer.send_envelope(*envelope)
            self.producer.producer.flush()
            t_next += step
            time.sleep(max(0.0, t_next - time.monotonic()))
        deadline = time.monotonic() + 120
        while self.count() < self.n + len(self.paced):
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers did not process the paced phase; see {STATE_DIR}/bench-worker-*.log")
            time.sleep(0.05)

    def collect(self) -> None:
        """Peak memory, the workers' metrics, and the latency of every alert of the paced phase."""

        self.figures["rss"] = max(peak_rss_mib(w.pid) for w in self.workers)
        per_worker = [scrape(port) for port in self.ports]
        self.metrics = {k: (max if k in MAXIMA else sum)(m.get(k, 0.0) for m in per_worker)
                        for k in set().union(*per_worker)}
        self.latencies: dict[str, list[float]] = {"evidence": [], "absence": []}
        self.by_detector: dict[str, list[float]] = {}
        closing = closing_detectors()
        tail = Tail(self.settings.kafka, [self.settings.topic("alerts")])
        idle = time.monotonic()
        while time.monotonic() - idle < 3:
            for rec in tail.poll(500):
                idle = time.monotonic()
                alert = orjson.loads(rec.value)
                src = alert["evidence"][-1].get("record_time")
                if src and src >= self.phase_start:
                    kind = "absence" if about_an_absence(alert, closing) else "evidence"
                    self.latencies[kind].append(rec.timestamp / 1000 - src)
                    self.by_detector.setdefault(alert["detector"], []).append(rec.timestamp / 1000 - src)
        tail.close()

    def stop_workers(self) -> None:
        for w in self.workers:
            stop_process(w)

    def after(self, broker: Any) -> None:
        """The state's size, a fresh worker's restore, and the raw consumer's reference on the same topics."""
        self.state = state_figures(self.settings)
        print("restoring: a fresh worker takes every partition over …", flush=True)
        self.state["restore"] = _restore(broker.bootstrap_servers, self.configs, self.producer, self.paced,
                                         self.topics, self.parts, self.expected)
        self.producer.close()
        self.ref = asyncio.run(raw_reference(broker.bootstrap_servers, list(self.topics.values()), self.n))

    def result(self) -> dict[str, Any]:
        f, m, args = self.figures, self.metrics, self.args
        evidence, absence = sorted(self.latencies["evidence"]), sorted(self.latencies["absence"])
        checkpoints = m.get("zhijian_checkpoint_seconds_count", 0.0)
        result = {
            "events": self.n,
            "workers": args.workers,
            "envelope_size": args.batch,
            "producer_preload_events_per_s": round(self.n / f["produce_s"], 1),
            "worker": {
                "events_per_s": round(self.n / f["drain_s"], 1),
                "drain_seconds": round(f["drain_s"], 3),
                "input_topics_drained_seconds": round(f["inputs_s"], 3),
                "start_to_partitions_shared_seconds": round(f["join_s"], 2),
                "checkpoint_records_after_preload": int(f["checkpoint_records"]),
                "checkpoint_settle_seconds": round(f["settle_s"], 2),
                "checkpoints": int(checkpoints),
                "checkpoint_mean_seconds": round(m.get("zhijian_checkpoint_seconds_sum", 0.0) / max(1.0, checkpoints), 4),
                "checkpoint_max_seconds": round(m.get("zhijian_checkpoint_longest_seconds", 0.0), 4),
                "checkpoint_pause_mean_seconds": round(m.get("zhijian_checkpoint_pause_seconds_sum", 0.0)
                                                       / max(1.0, m.get("zhijian_checkpoint_pause_seconds_count", 0.0)), 5),
                "checkpoint_pause_max_seconds": round(m.get("zhijian_checkpoint_longest_pause_seconds", 0.0), 5),
                "alerts": int(m.get("zhijian_alerts_total", 0)),
                "peak_rss_mib": round(f["rss"], 1),
                "backpressure_seconds": round(m.get("zhijian_agent_backpressure_seconds_total", 0.0), 3),
                "heap_released_mib": round(m.get("zhijian_heap_released_bytes_total", 0.0) / 2 ** 20, 1),
                "heap_release_mean_seconds": round(m.get("zhijian_heap_release_seconds_sum", 0.0)
                                                   / max(1.0, m.get("zhijian_heap_release_seconds_count", 0.0)), 5),
                "heap_release_max_seconds": round(m.get("zhijian_heap_release_longest_seconds", 0.0), 5),
                "latency_phase": {"events_per_s": self.rate, "seconds": self.paced_s,
                                  "envelope_size": args.latency_batch, "alerts": len(evidence) + len(absence),
                                  "raised_by_evidence": {"alerts": len(evidence),
                                                         "p50_s": round(quantile(evidence, 0.50), 4),
                                                         "p99_s": round(quantile(evidence, 0.99), 4)},
                                  "p99_s_by_detector": {d: round(quantile(sorted(v), 0.99), 4)
                                                        for d, v in sorted(self.by_detector.items())},
                                  "about_an_absence": {"alerts": len(absence),
                                                       "p50_s": round(quantile(absence, 0.50), 4),
                                                       "p99_s": round(quantile(absence, 0.99), 4)}},
            },
            "raw_aiokafka_reference": {"events_per_s": round(self.ref["events_per_s"], 1),
                                       "seconds": round(self.ref["seconds"], 3)},
            "state": self.state,
        }
        result["ratio_worker_to_reference"] = round(result["worker"]["events_per_s"] / self.ref["events_per_s"], 4)
        if args.against:
            single = json.loads(Path(args.against).read_text())
            result["speed_up_over_one_worker"] = round(result["ratio_worker_to_reference"]
                                                       / single["ratio_worker_to_reference"], 2)
        return result


def print_result(result: dict[str, Any], args: argparse.Namespace) -> None:
    w, r, lp, state = result["worker"], result["raw_aiokafka_reference"], result["worker"]["latency_phase"], result["state"]
    ev, ab = lp["raised_by_evidence"], lp["about_an_absence"]
    print(f"\n{'':30}{'events/s':>12}{'ratio':>8}{'peak RSS':>11}")
    print(f"{'zhijian worker(s) (Faust)':30}{w['events_per_s']:>12,.0f}{result['ratio_worker_to_reference']:>8.3f}"
          f"{w['peak_rss_mib']:>7.0f} MiB")
    print(f"{'raw aiokafka getmany + orjson':30}{r['events_per_s']:>12,.0f}{1:>8.3f}{'-':>11}")
    if "speed_up_over_one_worker" in result:
        print(f"speed-up of {result['workers']} workers over one (ratio over ratio): "
              f"{result['speed_up_over_one_worker']:.2f}×")
    print(f"event→alert at {lp['events_per_s']:g} events/s: raised by their evidence record p50 {ev['p50_s']:.3f} s, "
          f"p99 {ev['p99_s']:.3f} s ({ev['alerts']} alerts); about an absence, a duration or a closed period p50 "
          f"{ab['p50_s']:.3f} s, p99 {ab['p99_s']:.3f} s ({ab['alerts']} alerts)")
    print(f"{result['workers']} worker(s) started and sharing the partitions after "
          f"{w['start_to_partitions_shared_seconds']:.1f} s; input topics processed after "
          f"{w['input_topics_drained_seconds']:.1f} s, everything (re-keyed detectors included, committed) after "
          f"{w['drain_seconds']:.1f} s")
    print(f"checkpoints: {w['checkpoints']}, written in {1000 * w['checkpoint_mean_seconds']:.1f} ms on average, "
          f"{1000 * w['checkpoint_max_seconds']:.0f} ms at most (the agents run meanwhile); the capture held the agents "
          f"{1000 * w['checkpoint_pause_mean_seconds']:.2f} ms on average, {1000 * w['checkpoint_pause_max_seconds']:.1f} "
          f"ms at most; through the preload {w['checkpoint_records_after_preload']:,} changelog records in all "
          f"(every checkpoint until the state settled), settled {w['checkpoint_settle_seconds']:.1f} s after the drain")
    print(f"back-pressure: the agents waited {w['backpressure_seconds']:.2f} s in all for checkpoints' and forwards' "
          f"sends")
    print(f"C heap: {w['heap_released_mib']:.0f} MiB of free pages handed back, each time in "
          f"{1000 * w['heap_release_mean_seconds']:.1f} ms on average, {1000 * w['heap_release_max_seconds']:.1f} ms "
          f"at most (streams.worker.heap)")
    rs = state["restore"]
    print(f"restore by a fresh worker: {rs['records']:,} changelog records in {rs['seconds']:.2f} s "
          f"(first event processed {rs['first_event_seconds']:.1f} s after its start)")
    print(f"state: {state['keys']:,} keys, {state['bytes']:,} bytes, {state['bytes_per_key']:.0f} bytes per key")
    for name, d in sorted(state["by_detector"].items(), key=lambda kv: -kv[1]["bytes_per_key"]):
        print(f"  {name:34}{d['keys']:>9,} keys{d['bytes_per_key']:>9.0f} bytes per key")
    print(f"({result['events']} preloaded events in envelopes of {args.batch}; latency at {lp['events_per_s']:g} "
          f"events/s in envelopes of {args.latency_batch})")
