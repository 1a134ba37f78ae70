"""The `zhijian` command line: demo, worker, broker, bench, kcat."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from connectors.errors import ZhijianError

STATE_DIR = Path(".zhijian")


def _common_kafka(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML config file (default: $ZHIJIAN_CONFIG)")
    p.add_argument("--bootstrap-servers", help="Kafka bootstrap servers host:port[,...] (default 127.0.0.1:9092)")


def _settings(args: argparse.Namespace, **worker: Any):
    from streams.settings import load_settings

    return load_settings(args.config, overrides={
        "kafka": {"bootstrap_servers": getattr(args, "bootstrap_servers", None)},
        "worker": worker,
    })


def cmd_worker(args: argparse.Namespace) -> int:
    from connectors.broker import ensure_topics, wait_until_answers
    from streams.app import run_worker

    settings = _settings(args, metrics_port=args.metrics_port, metrics_host=args.metrics_host,
                         log_level=args.log_level)
    wait_until_answers(settings.kafka, timeout=args.connect_timeout)
    if not args.no_create_topics:
        ensure_topics(settings.kafka, settings.topic_specs(), settings.topics.replication_factor)
    return run_worker(settings)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def cmd_broker(args: argparse.Namespace) -> int:
    from connectors.broker import EmbeddedBroker, ensure_topics
    from streams.settings import load_settings

    STATE_DIR.mkdir(exist_ok=True)
    with EmbeddedBroker(port=args.port, log_path=STATE_DIR / "broker.log") as broker:
        settings = load_settings(args.config, overrides={"kafka": {"bootstrap_servers": broker.bootstrap_servers}})
        ensure_topics(broker.connection, settings.topic_specs())
        print(f"embedded Tansu broker on {broker.bootstrap_servers} with topics "
              f"{', '.join(s.name for s in settings.topic_specs())}; Ctrl-C stops it", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            while broker.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


def start_worker_process(bootstrap: str, metrics_port: int, log_path: Path, config: str | None = None,
                         extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "streams.cli", "worker", "--bootstrap-servers", bootstrap,
           "--metrics-port", str(metrics_port), "--no-create-topics"]
    if config:
        cmd += ["--config", config]
    env = {**os.environ, **(extra_env or {})}
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cmd_demo(args: argparse.Namespace) -> int:
    from connectors.alert_sink import AlertPrinter, AlertTail
    from connectors.broker import EmbeddedBroker, ensure_topics, free_port
    from connectors.producer import EnvelopeProducer
    from connectors.traffic import Traffic, TrafficConfig
    from streams.settings import load_settings

    STATE_DIR.mkdir(exist_ok=True)
    metrics_port = args.metrics_port or free_port()
    jsonl = open(args.alerts_out, "wb") if args.alerts_out else None
    print("zhijian demo: starting the embedded broker …", flush=True)
    broker = EmbeddedBroker(log_path=STATE_DIR / "broker.log")
    worker = None
    producer = tail = None
    printer = AlertPrinter(jsonl=jsonl)
    produced: Counter[str] = Counter()
    by_detector: Counter[str] = Counter()
    try:
        broker.start()
        settings = load_settings(args.config, overrides={"kafka": {"bootstrap_servers": broker.bootstrap_servers}})
        ensure_topics(settings.kafka, settings.topic_specs())
        worker = start_worker_process(broker.bootstrap_servers, metrics_port, STATE_DIR / "worker.log", args.config)
        print(f"  broker   {broker.bootstrap_servers} (Tansu, in memory)\n"
              f"  worker   pid {worker.pid}, log {STATE_DIR / 'worker.log'}\n"
              f"  metrics  http://127.0.0.1:{metrics_port}/metrics\n"
              f"  traffic  {settings.topics.prefix}{{prescriptions,claims,waste,telemetry}}, simulated clock "
              f"×{args.speed:g}\n"
              "  the worker joins its consumer group in about 30 s; alerts follow. Ctrl-C stops.\n", flush=True)
        cfg = TrafficConfig(seed=args.seed, speed=args.speed)
        traffic = Traffic(cfg, datetime.now(timezone.utc) - timedelta(days=30))
        topics = settings.input_topics()
        producer = EnvelopeProducer(settings.kafka, topics, settings.topics.input_partitions)
        tail = AlertTail(settings.kafka, settings.topic("alerts"))
        started = last = time.monotonic()
        sim = traffic.t0
        while args.duration is None or time.monotonic() - started < args.duration:
            now = time.monotonic()
            sim = min(sim + (now - last) * args.speed, time.time())
            last = now
            for stream, key, event in traffic.until(sim):
                producer.add(stream, key, event)
                produced[stream] += 1
            producer.flush()
            for _, alert in tail.poll(timeout_ms=250):
                printer(alert)
                if alert.get("status") == "open":
                    by_detector[alert["detector"]] += 1
            if worker.poll() is not None:
                raise ZhijianError(f"the worker exited with code {worker.returncode}; see {STATE_DIR / 'worker.log'}")
    except KeyboardInterrupt:
        print("\ninterrupted; stopping …", file=sys.stderr)
    finally:
        if producer is not None:
            producer.close()
        if tail is not None:
            tail.close()
        if worker is not None:
            stop_process(worker)
        broker.stop()
        if jsonl is not None:
            jsonl.close()
    print(f"\nproduced {sum(produced.values())} events ({dict(produced)}); "
          f"{printer.count} alert records, new alerts by detector: {dict(by_detector)}")
    return 0


def cmd_kcat(args: argparse.Namespace) -> int:
    from connectors.kcat import kcat_command

    exe, env = kcat_command()
    os.execve(exe[0], exe + args.kcat_args, env)
    return 0  # not reached


def cmd_replay(args: argparse.Namespace) -> int:
    from connectors.broker import wait_until_answers
    from connectors.mapping import Mapping
    from connectors.producer import EnvelopeProducer
    from connectors.replay import Progress, load_sources, replay

    settings = _settings(args)
    mappings = {}
    for spec in args.map or []:
        stream, sep, path = spec.partition("=")
        loaded_stream, mapping = Mapping.load(path if sep else spec)
        mappings[stream if sep else loaded_stream] = mapping
    records = load_sources(args.sources, mappings)
    wait_until_answers(settings.kafka, timeout=15)
    topics = settings.input_topics()
    producer = EnvelopeProducer(settings.kafka, topics, settings.topics.input_partitions, max_batch=args.batch)
    try:
        sent = replay(records, producer, args.rate, Progress(len(records), force=args.progress))
    finally:
        producer.close()
    print(f"replayed {sent} events to {', '.join(sorted({topics[s] for _, s, _ in records}))}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from streams.bench import run_bench

    return run_bench(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zhijian", description="智监 streaming risk monitoring for healthcare supervision")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="embedded broker + worker + simulated traffic, alerts printed live")
    d.add_argument("--config")
    d.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    d.add_argument("--alerts-out", help="also write every alert record as JSON lines to this file")
    d.add_argument("--metrics-port", type=int, default=9464, help="worker /metrics port (0 = pick a free one)")
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--speed", type=float, default=3600.0, help="simulated seconds per real second")
    d.set_defaults(func=cmd_demo)

    w = sub.add_parser("worker", help="run the Faust worker against a Kafka cluster")
    _common_kafka(w)
    w.add_argument("--metrics-port", type=int, help="serve /metrics on this port (default 9464, 0 = off)")
    w.add_argument("--metrics-host", help="bind address of /metrics (default 127.0.0.1)")
    w.add_argument("--log-level", help="WARNING (default), INFO, DEBUG")
    w.add_argument("--connect-timeout", type=float, default=15.0)
    w.add_argument("--no-create-topics", action="store_true", help="do not create missing topics")
    w.set_defaults(func=cmd_worker)

    b = sub.add_parser("broker", help="run the embedded Tansu broker in the foreground with the topics created")
    b.add_argument("--config")
    b.add_argument("--port", type=int, default=9092)
    b.set_defaults(func=cmd_broker)

    be = sub.add_parser("bench", help="throughput and latency of the worker beside a raw aiokafka consumer")
    be.add_argument("--events", type=int, default=200_000)
    be.add_argument("--batch", type=int, default=500, help="events per envelope (1 = one event per record)")
    be.add_argument("--latency-rate", type=float, default=2000, help="events/s of the paced latency phase")
    be.add_argument("--latency-seconds", type=float, default=10)
    be.add_argument("--latency-batch", type=int, default=20, help="events per envelope in the latency phase")
    be.add_argument("--json", help="write the figures to this file")
    be.set_defaults(func=cmd_bench)

    r = sub.add_parser("replay", help="produce JSON-lines or CSV files to the input topics, in event-time order")
    _common_kafka(r)
    r.add_argument("sources", nargs="+", metavar="STREAM=PATH",
                   help="e.g. telemetry=readings.jsonl claim=medical_claim.csv (STREAM: prescription, claim, waste, telemetry)")
    r.add_argument("--map", action="append", metavar="STREAM=MAPPING.toml", help="column mapping for CSV files")
    r.add_argument("--rate", type=float, help="at most this many events per second (default: as fast as possible)")
    r.add_argument("--batch", type=int, default=1, help="events per Kafka record (envelopes); 1 = one event each")
    r.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is not a terminal")
    r.set_defaults(func=cmd_replay)

    k = sub.add_parser("kcat", help="run kcat with a librdkafka that talks to Tansu (args after --)")
    k.add_argument("kcat_args", nargs=argparse.REMAINDER)
    k.set_defaults(func=cmd_kcat)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # kafka-python's retry chatter; errors surface as ours
    try:
        return args.func(args) or 0
    except ZhijianError as e:
        print(f"zhijian: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
