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

from streams.lab.processes import peak_rss_mib

STATE_DIR = Path(".zhijian")


def scrape(port: int) -> dict[str, float]:
    """Sum of each zhijian_* sample family on the worker's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("zhijian_"):
            name, value = line.rsplit(" ", 1)
            out[name.split("{")[0]] = out.get(name.split("{")[0], 0.0) + float(value)
    return out


def _count(port: int) -> float:
    m = scrape(port)
    return m.get("zhijian_events_total", 0) + m.get("zhijian_invalid_records_total", 0)


def wait_for_events(port: int, n: int, timeout: float, proc: subprocess.Popen[bytes],
                    log: Path = STATE_DIR / "bench-worker.log", hint: str = "") -> float:
    """Wait until the worker on ``port`` has counted ``n`` events (valid or refused); the time it did."""
    from connectors.errors import ZhijianError

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
    from aiokafka import AIOKafkaConsumer

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
    from kafka import KafkaConsumer, TopicPartition

    latest: dict[tuple[str, bytes], int] = {}
    consumer = KafkaConsumer(**settings.kafka.kafka_python(), enable_auto_commit=False)
    try:
        for spec in settings.internal_topic_specs():
            if not spec.compacted:
                continue
            tps = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                for records in consumer.poll(timeout_ms=500).values():
                    for r in records:
                        k = (spec.name, r.key)
                        if r.value is None:
                            latest.pop(k, None)
                        else:
                            latest[k] = len(r.key) + len(r.value)
    finally:
        consumer.close()
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
    from connectors.kafka.broker import free_port
    from connectors.kafka.producer import build_envelopes
    from streams.lab.processes import start_worker_process, stop_process

    port = free_port()
    started = time.monotonic()
    worker = start_worker_process(bootstrap, port, STATE_DIR / "bench-worker-restore.log", configs)
    try:
        _wait_assigned([port], [worker], expected, 180)
        # one event again on every input partition (no new alert): each partition's first record restores its state
        from connectors.kafka.producer import partition_for

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
    from connectors.alert_sink import AlertTail
    from connectors.kafka.broker import EmbeddedBroker, ensure_topics, free_port
    from connectors.kafka.producer import EnvelopeProducer, build_envelopes
    from streams.lab.simulator import RegionSimulator, SimulationConfig
    from streams.lab.evaluate import drained as drained_topics
    from streams.lab.processes import ensure_run_key, simulated_region_configs, start_worker_process, stop_process
    from streams.settings import load_settings

    STATE_DIR.mkdir(exist_ok=True)
    print(ensure_run_key(), flush=True)
    n, rate, paced_s = args.events, args.latency_rate, args.latency_seconds
    print(f"generating {n} + {int(rate * paced_s)} events …", flush=True)
    def generate(sim: Any, count: int) -> list[Any]:
        out: list[Any] = []
        horizon = sim.t0
        while len(out) < count:
            horizon += 3600
            out.extend(sim.until(horizon))
        return out[:count]

    # the preload is a region as the evaluation simulates it; the paced phase follows it in time with
    # risks planted 100× as often, so that enough alerts come out to measure their latency
    preload = generate(RegionSimulator(SimulationConfig(seed=11, days=60)), n)
    after = datetime.fromisoformat(preload[-1][2]["event_time"]) + timedelta(hours=1)
    paced = generate(RegionSimulator(SimulationConfig(seed=12, days=2, start=after, scenario_rate=100,
                                                      warmup_days=0)), int(rate * paced_s))

    workers_n = args.workers
    with EmbeddedBroker(log_path=STATE_DIR / "bench-broker.log") as broker:
        settings = load_settings(overrides={"kafka": {"bootstrap_servers": broker.bootstrap_servers}})
        ensure_topics(settings.kafka, settings.topic_specs())
        topics = settings.input_topics()
        parts = settings.topics.input_partitions
        producer = EnvelopeProducer(settings.kafka, topics, parts, max_batch=args.batch)
        envelopes = build_envelopes(preload, topics, parts, args.batch)
        configs = simulated_region_configs(None)
        consumed = len(topics) + sum(s.name.endswith("-repartition") for s in settings.internal_topic_specs())
        expected = consumed * parts  # partitions the group shares
        ports = [free_port() for _ in range(workers_n)]
        worker_started = time.monotonic()
        workers = [start_worker_process(broker.bootstrap_servers, port, STATE_DIR / f"bench-worker-{i}.log", configs)
                   for i, port in enumerate(ports)]

        def count() -> float:
            total = 0.0
            for port in ports:
                try:
                    total += _count(port)
                except OSError:
                    pass
            return total

        try:
            # the workers join their group before the preload, so that N of them share it from its first record
            print(f"starting {workers_n} worker(s) and waiting until they share the partitions …", flush=True)
            _wait_assigned(ports, workers, expected, 180)
            join_s = time.monotonic() - worker_started
            print(f"preloading {n} events in {len(envelopes)} records …", flush=True)
            t0 = time.monotonic()
            for envelope in envelopes:
                producer.send_envelope(*envelope)
            producer.flush()
            produce_s = time.monotonic() - t0
            deadline = time.monotonic() + 600
            while True:  # timed from the first record sent: the workers read while the preload is written
                if any(w.poll() is not None for w in workers) or time.monotonic() > deadline:
                    raise RuntimeError(f"worker did not drain; see {STATE_DIR}/bench-worker-*.log")
                c = count()
                now = time.monotonic()
                if c >= n:
                    break
                time.sleep(0.02)
            inputs_s = now - t0
            # the re-keyed detectors run on the repartition topics, behind the inputs: the work is done when the
            # group has committed every record of every topic it consumes
            consumed_topics = list(topics.values()) + [
                s.name for s in settings.internal_topic_specs() if s.name.endswith("-repartition")]
            while not drained_topics(settings.kafka, settings.worker.app_id, consumed_topics)[0]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the repartition topics did not drain; see {STATE_DIR}/bench-worker-*.log")
                time.sleep(0.1)
            drain_s = time.monotonic() - t0
            drained = n

            # the state checkpoint that follows a burst (one changelog record per key the preload touched) runs
            # on the commit path; let it finish, and report it, so the paced phase measures steady flow
            settle_start, last, stable_since = time.monotonic(), -1.0, time.monotonic()
            while time.monotonic() - settle_start < 60 and time.monotonic() - stable_since < 2:
                written = sum(scrape(port).get("zhijian_checkpoint_records_total", 0.0) for port in ports)
                if written != last:
                    last, stable_since = written, time.monotonic()
                time.sleep(0.1)
            settle_s = max(0.0, stable_since - settle_start)
            print(f"state checkpoint after the preload: {last:.0f} changelog records, settled in {settle_s:.1f} s",
                  flush=True)
            print(f"latency phase: {rate:g} events/s for {paced_s:g} s in envelopes of {args.latency_batch} …",
                  flush=True)
            phase_start = time.time()
            step = args.latency_batch / rate
            t_next = time.monotonic()
            for i in range(0, len(paced), args.latency_batch):
                for envelope in build_envelopes(paced[i:i + args.latency_batch], topics, parts, args.latency_batch):
                    producer.send_envelope(*envelope)
                producer.producer.flush()
                t_next += step
                time.sleep(max(0.0, t_next - time.monotonic()))
            deadline = time.monotonic() + 120
            while count() < n + len(paced):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"workers did not process the paced phase; see {STATE_DIR}/bench-worker-*.log")
                time.sleep(0.05)
            rss = max(peak_rss_mib(w.pid) for w in workers)
            per_worker = [scrape(port) for port in ports]
            metrics = {k: sum(m.get(k, 0.0) for m in per_worker) for k in set().union(*per_worker)}
            latencies = []
            tail = AlertTail(settings.kafka, settings.topic("alerts"))
            idle = time.monotonic()
            while time.monotonic() - idle < 3:
                for rec, alert in tail.poll(500):
                    idle = time.monotonic()
                    src = alert["evidence"][-1].get("record_time")
                    if src and src >= phase_start:
                        latencies.append(rec.timestamp / 1000 - src)
            tail.close()
        finally:
            for w in workers:
                stop_process(w)
        state = state_figures(settings)
        print("restoring: a fresh worker takes every partition over …", flush=True)
        state["restore"] = _restore(broker.bootstrap_servers, configs, producer, paced, topics, parts, expected)
        producer.close()
        ref = asyncio.run(raw_reference(broker.bootstrap_servers, list(topics.values()), n))

    lat = sorted(latencies)
    q = (lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan"))
    result = {
        "events": n,
        "workers": workers_n,
        "envelope_size": args.batch,
        "producer_preload_events_per_s": round(n / produce_s, 1),
        "worker": {
            "events_per_s": round(drained / drain_s, 1),
            "drain_seconds": round(drain_s, 3),
            "input_topics_drained_seconds": round(inputs_s, 3),
            "start_to_partitions_shared_seconds": round(join_s, 2),
            "checkpoint_records_after_preload": int(last),
            "checkpoint_settle_seconds": round(settle_s, 2),
            "checkpoints": int(metrics.get("zhijian_checkpoint_seconds_count", 0)),
            "checkpoint_mean_seconds": round(metrics.get("zhijian_checkpoint_seconds_sum", 0.0)
                                             / max(1.0, metrics.get("zhijian_checkpoint_seconds_count", 0.0)), 4),
            "alerts": int(metrics.get("zhijian_alerts_total", 0)),
            "peak_rss_mib": round(rss, 1),
            "latency_phase": {"events_per_s": rate, "seconds": paced_s, "envelope_size": args.latency_batch,
                              "alerts": len(lat), "alert_latency_p50_s": round(q(0.50), 4),
                              "alert_latency_p99_s": round(q(0.99), 4)},
        },
        "raw_aiokafka_reference": {"events_per_s": round(ref["events_per_s"], 1), "seconds": round(ref["seconds"], 3)},
        "state": state,
    }
    result["ratio_worker_to_reference"] = round(result["worker"]["events_per_s"] / ref["events_per_s"], 4)
    w, r, lp = result["worker"], result["raw_aiokafka_reference"], result["worker"]["latency_phase"]
    print(f"\n{'':30}{'events/s':>12}{'p50 alert':>12}{'p99 alert':>12}{'peak RSS':>11}")
    print(f"{'zhijian worker (Faust)':30}{w['events_per_s']:>12,.0f}{lp['alert_latency_p50_s']:>11.3f}s"
          f"{lp['alert_latency_p99_s']:>11.3f}s{w['peak_rss_mib']:>8.0f} MiB")
    print(f"{'raw aiokafka getmany + orjson':30}{r['events_per_s']:>12,.0f}{'-':>12}{'-':>12}{'-':>11}")
    print(f"{workers_n} worker(s) started and sharing the partitions after {w['start_to_partitions_shared_seconds']:.1f} s; "
          f"input topics processed after {w['input_topics_drained_seconds']:.1f} s, everything (re-keyed detectors "
          f"included, committed) after {w['drain_seconds']:.1f} s")
    print(f"checkpoints: {w['checkpoints']}, mean {1000 * w['checkpoint_mean_seconds']:.1f} ms; after the preload "
          f"{w['checkpoint_records_after_preload']:,} changelog records, settled in {w['checkpoint_settle_seconds']:.1f} s")
    rs = state["restore"]
    print(f"restore by a fresh worker: {rs['records']:,} changelog records in {rs['seconds']:.2f} s "
          f"(first event processed {rs['first_event_seconds']:.1f} s after its start)")
    print(f"state: {state['keys']:,} keys, {state['bytes']:,} bytes, {state['bytes_per_key']:.0f} bytes per key")
    for name, d in sorted(state["by_detector"].items(), key=lambda kv: -kv[1]["bytes_per_key"]):
        print(f"  {name:34}{d['keys']:>9,} keys{d['bytes_per_key']:>9.0f} bytes per key")
    print(f"ratio worker / reference: {result['ratio_worker_to_reference']:.3f}   ({n} preloaded events in envelopes "
          f"of {args.batch}; latency over {lp['alerts']} alerts at {rate:g} events/s in envelopes of "
          f"{args.latency_batch})")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0
