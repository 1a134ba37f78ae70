"""`zhijian evaluate`: the region simulator through the real worker on the embedded broker, scored
against the scenarios' ground truth (recall, precision, detection delay, false alarms per 10k).

The events go to the input topics exactly as in production (envelopes, keyed partitions); the
worker is the same ``zhijian worker`` process; the alerts are read back from the alert topic.
The ground truth never touches a topic: it stays in this process and, with ``--truth``, in a file.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.errors import ZhijianError

STATE_DIR = Path(".zhijian")
DAY = 86400.0


def incidents_from_truth(truth: list[dict[str, Any]], pseudonymize) -> list:
    """Ground-truth records → Incidents; patient entities take the worker's pseudonym."""
    from models.evaluation import Incident

    out = []
    for x in truth:
        kind, ident = x["entity"]["kind"], x["entity"]["id"]
        out.append(Incident(x["scenario"], kind, pseudonymize(ident) if kind == "patient" else ident,
                            x["start_t"], x["end_t"], tuple(x["detectors"])))
    return out


def alert_for_scoring(alert: dict[str, Any]) -> dict[str, Any]:
    return {"detector": alert["detector"], "entity": alert["entity"], "alert_id": alert["alert_id"],
            "t": datetime.fromisoformat(alert["event_time"]).timestamp(), "reason": alert["reason"]}


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_evaluate(args: argparse.Namespace) -> int:
    from connectors.alert_sink import AlertTail
    from connectors.broker import EmbeddedBroker, ensure_topics, free_port
    from connectors.producer import EnvelopeProducer
    from connectors.simulator.files import write_truth
    from connectors.simulator.scenarios import BY_NAME
    from models.evaluation import markdown, report_dict, score
    from models.pseudonym import Pseudonymizer
    from streams.bench import peak_rss_mib, scrape, wait_for_events
    from streams.cli import simulated_region_configs, simulator_from_args, start_worker_process, stop_process
    from streams.settings import load_settings

    if args.days <= 0 or args.scale <= 0:
        raise ZhijianError("--days and --scale must be positive")
    STATE_DIR.mkdir(exist_ok=True)
    sim = simulator_from_args(args)
    started = time.monotonic()
    produced: Counter[str] = Counter()
    alerts: dict[str, dict[str, Any]] = {}
    _progress(f"evaluate: seed {args.seed}, {args.days:g} simulated days, scale {args.scale:g} "
              f"({len(sim.region.institutions)} institutions, {len(sim.region.devices)} cold-chain devices)")
    with EmbeddedBroker(log_path=STATE_DIR / "evaluate-broker.log") as broker:
        configs = simulated_region_configs(args.config)
        settings = load_settings(configs, overrides={"kafka": {"bootstrap_servers": broker.bootstrap_servers}})
        ensure_topics(settings.kafka, settings.topic_specs())
        port = free_port()
        log = STATE_DIR / "evaluate-worker.log"
        worker = start_worker_process(broker.bootstrap_servers, port, log, configs)
        try:
            producer = EnvelopeProducer(settings.kafka, settings.input_topics(), settings.topics.input_partitions)
            end = sim.t0 + args.days * DAY
            hour = sim.t0
            while hour < end:  # one flush per simulated hour: envelopes hold at most an hour of a partition
                hour = min(end, hour + 3600)
                for stream, key, event in sim.until(hour):
                    producer.add(stream, key, event)
                    produced[stream] += 1
                producer.flush()
                if int((hour - sim.t0) / 3600) % 24 == 0:
                    _progress(f"  produced day {(hour - sim.t0) / DAY:.0f}/{args.days:g}: "
                              f"{sum(produced.values()):,} events")
            producer.close()
            total = sum(produced.values())
            _progress(f"  {total:,} events produced in {time.monotonic() - started:.0f} s; waiting for the worker …")
            wait_for_events(port, total, args.timeout, worker, log, " (raise --timeout on a slow machine)")
            m = scrape(port)
            expected = int(m.get("zhijian_alerts_total", 0))
            _progress(f"  worker done after {time.monotonic() - started:.0f} s; reading {expected} alerts …")
            tail = AlertTail(settings.kafka, settings.topic("alerts"))
            idle = time.monotonic()
            while len(alerts) < expected or time.monotonic() - idle < 2:
                for _, alert in tail.poll(500):
                    idle = time.monotonic()
                    alerts.setdefault(alert["alert_id"], alert)  # the first record is the opening one
                if time.monotonic() - idle > 30:
                    raise ZhijianError(f"read {len(alerts)} of {expected} alerts from the alert topic")
            tail.close()
            peak_rss = peak_rss_mib(worker.pid)
        finally:
            stop_process(worker)
    pseudonymize = Pseudonymizer.from_env()
    truth = incidents_from_truth(sim.truth, pseudonymize)
    report = score(truth, [alert_for_scoring(a) for a in alerts.values()], events=sum(produced.values()))
    enabled = list(BY_NAME) if sim.cfg.scenarios is None else list(sim.cfg.scenarios)
    result = {
        "seed": args.seed, "days": args.days, "scale": args.scale,
        "events": dict(produced), "alerts": len(alerts), "wall_seconds": round(time.monotonic() - started, 1),
        "worker_peak_rss_mib": round(peak_rss, 1),
        "scenarios": {n: {"stream": BY_NAME[n].stream, "term": BY_NAME[n].term, "entity": BY_NAME[n].entity_kind,
                          "detectors": list(BY_NAME[n].detectors), "description": BY_NAME[n].description}
                      for n in enabled},
        **report_dict(report),
    }
    print(markdown(report))
    print(f"\n{sum(produced.values()):,} events ({', '.join(f'{k} {v:,}' for k, v in sorted(produced.items()))}), "
          f"{len(alerts)} alerts, {result['wall_seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False))
    if args.truth:
        write_truth(Path(args.truth), sim.truth)
    return 0
