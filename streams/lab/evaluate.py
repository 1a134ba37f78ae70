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

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from connectors.errors import ZhijianError
from connectors.kafka.broker import EmbeddedBroker, ensure_topics, free_port
from connectors.kafka.cluster import EmbeddedCluster
from connectors.kafka.follower import read_topics
from connectors.kafka.producer import EnvelopeProducer
from models.contracts.pseudonym import Pseudonymizer
from streams.lab.faults import BrokerFaults, CommitWatch
from streams.lab.processes import (ensure_run_key, last_error, log_digest, peak_rss_mib, simulated_region_configs,
                                   simulator_from_args, start_worker_process, stop_process)
from streams.lab.rank import RISK_SCORE, compare_rankings, positives, registry
from streams.lab.rank import markdown as rank_markdown
from streams.lab.scoring import Incident, markdown, report_dict, score
from streams.lab.simulator.files import write_truth
from streams.lab.simulator.scenarios import BY_NAME
from streams.settings import load_settings
from streams.workbench.risk.ledger import InstitutionLedger

STATE_DIR = Path(".zhijian")
DAY = 86400.0


def incidents_from_truth(truth: list[dict[str, Any]], pseudonymize) -> list:
    """Ground-truth records → Incidents; patient entities take the worker's pseudonym."""

    out = []
    for x in truth:
        kind, ident = x["entity"]["kind"], x["entity"]["id"]
        out.append(Incident(x["scenario"], kind, pseudonymize(ident) if kind == "patient" else ident,
                            x["start_t"], x["end_t"], tuple(x["detectors"]), bool(x["detail"].get("benign")),
                            not x["detail"].get("optional")))
    return out


def alert_for_scoring(alert: dict[str, Any]) -> dict[str, Any]:
    return {"detector": alert["detector"], "entity": alert["entity"], "alert_id": alert["alert_id"],
            "t": datetime.fromisoformat(alert["event_time"]).timestamp(), "reason": alert["reason"]}


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Fleet:
    """The worker processes of one run: ``n`` of them, and — with ``kill_every`` — one killed with SIGKILL on
    that period (in turn) and replaced at once, as a crashing host would be."""

    def __init__(self, bootstrap: str, configs: list[str], n: int, label: str,
                 env: dict[str, str] | None = None) -> None:
        self.bootstrap, self.configs, self.label, self.env = bootstrap, configs, label, env
        self.procs: list[Any] = []
        self.ports: list[int] = []
        self.logs: list[Path] = []
        self.kills = 0
        self.started = 0
        for _ in range(n):
            self._start()

    def _start(self) -> None:

        port = free_port()
        log = STATE_DIR / f"evaluate-worker-{self.label}-{self.started}.log"
        log.unlink(missing_ok=True)
        self.procs.append(start_worker_process(self.bootstrap, port, log, self.configs, extra_env=self.env))
        self.ports.append(port)
        self.logs.append(log)
        self.started += 1

    def kill_one(self) -> None:
        victim = self.kills % len(self.procs)
        proc = self.procs.pop(victim)
        self.ports.pop(victim)
        self.logs.pop(victim)
        proc.kill()  # SIGKILL: no commit, no leaving the group, no flush
        proc.wait()
        self.kills += 1
        self._start()

    def check(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                error = last_error(self.logs[i])
                raise ZhijianError(f"a worker exited with code {proc.returncode}"
                                   f"{f' ({error})' if error else ''}; see {self.logs[i]}")

    def stop(self) -> None:

        for proc in self.procs:
            stop_process(proc)


def drained(conn: Any, group: str, topics: list[str]) -> tuple[bool, int]:
    """Whether the group has committed every record of ``topics``; and how many remain."""

    admin = KafkaAdminClient(**conn.kafka_python())
    consumer = KafkaConsumer(**conn.kafka_python())
    try:
        committed = admin.list_group_offsets({group: None}).get(group, {})
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(tps)
    except KafkaError:  # the group has no coordinator yet (no worker has joined): nothing committed
        return False, -1
    finally:
        consumer.close()
        admin.close()
    left = sum(max(0, ends[tp] - (committed[tp].offset if tp in committed else 0)) for tp in tps)
    return left == 0, left


def alert_records(conn: Any, topic: str) -> list[dict[str, Any]]:
    """Every record on the alert topic, in each partition's order (an alert's opening record, then its updates)."""

    return [orjson.loads(r.value) for r in read_topics(conn, [topic])]


def read_all_alerts(conn: Any, topic: str) -> dict[str, dict[str, Any]]:
    """Every alert on the topic, by id (the first record of an id is its opening one); an alert whose last record
    withdraws it (a claim's correction removed its grounds) is none."""
    alerts: dict[str, dict[str, Any]] = {}
    last: dict[str, str] = {}
    for alert in alert_records(conn, topic):
        alerts.setdefault(alert["alert_id"], alert)
        last[alert["alert_id"]] = alert.get("status", "open")
    return {i: a for i, a in alerts.items() if last[i] != "withdrawn"}


def dead_letter_reasons(conn: Any, topic: str) -> dict[str, int]:
    """How many records the dead-letter topic holds, by reason."""
    reasons: Counter[str] = Counter()
    for r in read_topics(conn, [topic]):
        reasons[dict(r.headers or ()).get("zhijian.error.reason", b"?").decode()] += 1
    return dict(reasons)


def run_pipeline(args: argparse.Namespace, sim: Any, workers: int, kill_every: float | None, label: str,
                 on_event: Any = None, brokers: int = 1, broker_faults: bool = False) -> dict:
    """The simulation through ``workers`` worker processes on a fresh embedded broker (or a cluster of
    ``brokers``, one of which is killed and restarted twice with ``broker_faults``); the alerts by id
    (``on_event(stream, event)`` sees every event produced)."""

    started = time.monotonic()
    produced: Counter[str] = Counter()
    if brokers > 1:
        kafka: Any = EmbeddedCluster(brokers, log_dir=STATE_DIR / f"evaluate-cluster-{label}")
        kafka.log_dir.mkdir(parents=True, exist_ok=True)
    else:
        kafka = EmbeddedBroker(log_path=STATE_DIR / f"evaluate-broker-{label}.log")
    with kafka as broker:
        configs = simulated_region_configs(args.config, sim.region, STATE_DIR)
        rf = broker.replication_factor if brokers > 1 else 1
        settings = load_settings(configs, overrides={"kafka": {"bootstrap_servers": broker.bootstrap_servers},
                                                     "topics": {"replication_factor": rf}})
        if brokers > 1:
            broker.ensure_topics(settings.topic_specs())
        else:
            ensure_topics(settings.kafka, settings.topic_specs())
        fleet = Fleet(broker.bootstrap_servers, configs, workers, label, {"ZHIJIAN_REPLICATION_FACTOR": str(rf)})
        last_kill = time.monotonic()
        consumed = list(settings.input_topics().values()) + [
            s.name for s in settings.internal_topic_specs() if s.name.endswith("-repartition")]
        faults = watch = None
        if broker_faults:
            faults = BrokerFaults(broker, settings.input_topics()["claim"], down_s=args.broker_down, log=_progress)
            watch = CommitWatch(broker.live_servers, settings.worker.app_id, consumed).start()
        try:
            producer = EnvelopeProducer(settings.kafka, settings.input_topics(), settings.topics.input_partitions)
            for table, records in sim.references().items():
                producer.send_keyed(settings.reference_topics()[table], records)
            end = sim.t0 + args.days * DAY
            hour = sim.t0
            while hour < end:  # one flush per simulated hour: envelopes hold at most an hour of a partition
                hour = min(end, hour + 3600)
                for stream, key, event in sim.until(hour):
                    producer.add(stream, key, event)
                    produced[stream] += 1
                    if on_event is not None:
                        on_event(stream, event)
                producer.flush()
                if int((hour - sim.t0) / 3600) % 24 == 0:
                    _progress(f"  [{label}] produced day {(hour - sim.t0) / DAY:.0f}/{args.days:g}: "
                              f"{sum(produced.values()):,} events")
                if kill_every and time.monotonic() - last_kill >= kill_every:
                    fleet.kill_one()
                    last_kill = time.monotonic()
                    _progress(f"  [{label}] killed a worker with SIGKILL ({fleet.kills} so far), started another")
                if faults is not None:
                    faults.tick((hour - sim.t0) / (end - sim.t0))
            producer.close()
            total = sum(produced.values())
            _progress(f"  [{label}] {total:,} events produced in {time.monotonic() - started:.0f} s; waiting for "
                      f"{workers} worker(s) to commit everything …")
            _wait_committed(args, settings, fleet, consumed, label, kill_every, last_kill, faults)
            alerts = read_all_alerts(settings.kafka, settings.topic("alerts"))
            dead = dead_letter_reasons(settings.kafka, settings.topic("deadletter"))
            peak_rss = max(peak_rss_mib(p.pid) for p in fleet.procs)
            fault_figures = None
            if faults is not None and watch is not None:
                watch.stop()
                times = [r.timestamp / 1000 for r in read_topics(settings.kafka, [settings.topic("alerts")])]
                fault_figures = faults.report(watch, times)
        finally:
            fleet.stop()
            if watch is not None:
                watch.stop()
    _progress(f"  [{label}] {len(alerts)} alerts after {time.monotonic() - started:.0f} s")
    return {"produced": produced, "alerts": alerts, "peak_rss": peak_rss, "kills": fleet.kills,
            "wall": time.monotonic() - started, "dead_letters": dead, "broker_faults": fault_figures,
            "worker_logs": [STATE_DIR / f"evaluate-worker-{label}-{i}.log" for i in range(fleet.started)]}


def _wait_committed(args: argparse.Namespace, settings: Any, fleet: Fleet, consumed: list[str], label: str,
                    kill_every: float | None, last_kill: float, faults: BrokerFaults | None) -> None:
    """Wait until the group has committed every record of ``consumed`` (twice, 2 s apart: forwarding happens at
    commits), killing a worker every ``kill_every`` s meanwhile and letting the broker faults finish first."""
    deadline = time.monotonic() + args.timeout
    calm = 0
    while calm < 2:
        time.sleep(2.0)
        fleet.check()
        if faults is not None:
            faults.tick(1.0)
            if not faults.settled:  # every fault injected and every broker back before the end
                continue
        done, left = drained(settings.kafka, settings.worker.app_id, consumed)
        calm = calm + 1 if done else 0
        if not done and kill_every and time.monotonic() - last_kill >= kill_every:
            fleet.kill_one()
            last_kill = time.monotonic()
            _progress(f"  [{label}] {left:,} records to go; killed a worker with SIGKILL ({fleet.kills} so "
                      f"far), started another")
        if time.monotonic() > deadline:
            raise ZhijianError(f"the workers left {left:,} records uncommitted after {args.timeout:g} s; see "
                               f"{STATE_DIR}/evaluate-worker-{label}-*.log (raise --timeout on a slow machine)")


def alert_index(alerts: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """alert id → [detector, entity, event time]: what a comparison names."""
    return {i: [a["detector"], f"{a['entity']['kind']}:{a['entity']['id']}", a["event_time"]] for i, a in alerts.items()}


def compare(reference: dict[str, list[str]], got: dict[str, list[str]]) -> dict[str, Any]:
    missing = sorted(set(reference) - set(got), key=lambda i: reference[i])
    extra = sorted(set(got) - set(reference), key=lambda i: got[i])
    return {"identical": not missing and not extra, "reference_alerts": len(reference), "alerts": len(got),
            "missing": [[i, *reference[i]] for i in missing], "extra": [[i, *got[i]] for i in extra]}


def _print_comparison(c: dict[str, Any], layout: str) -> None:
    if c["identical"]:
        print(f"\nalert set identical, by id, to the one-worker uninterrupted run: {c['alerts']} alerts ({layout})")
        return
    print(f"\nalert set DIFFERS from the one-worker uninterrupted run ({layout}): {len(c['missing'])} missing, "
          f"{len(c['extra'])} extra of {c['reference_alerts']}")
    for kind in ("missing", "extra"):
        for alert_id, detector, entity, when in c[kind][:20]:
            print(f"  {kind:7} {alert_id}  {detector:32} {entity:28} {when}")


def _reference(args: argparse.Namespace) -> tuple[dict[str, list[str]], dict[str, int] | None]:
    """The alert index and dead letters to compare with: read from ``--reference`` or run (one worker, one broker)."""
    if args.reference:
        try:
            earlier = json.loads(Path(args.reference).read_text())
            return earlier["alert_index"], earlier.get("dead_letters")
        except (OSError, ValueError, KeyError) as e:
            raise ZhijianError(f"--reference {args.reference}: not the --json of an evaluate run ({e})") from e
    _progress("  first the reference: one worker on one broker, uninterrupted")
    first = run_pipeline(args, simulator_from_args(args), 1, None, "reference")
    return alert_index(first["alerts"]), first["dead_letters"]


def _compared(result: dict[str, Any], reference: dict[str, list[str]] | None, reference_dead: dict[str, int] | None,
              run: dict[str, Any], layout: str) -> int:
    """Compare the run with the reference (alerts by id, dead letters by reason) and print the broker faults' figures;
    the exit status: 1 when they differ."""
    status = 0
    if reference is not None:
        result["comparison"] = compare(reference, result["alert_index"])
        _print_comparison(result["comparison"], layout)
        status = 0 if result["comparison"]["identical"] else 1
        if reference_dead is not None:
            result["comparison"]["dead_letters_same"] = reference_dead == run["dead_letters"]
            if reference_dead != run["dead_letters"]:
                print(f"dead letters DIFFER from the reference run: {run['dead_letters']} against {reference_dead}")
                status = 1
    if status:  # what the workers went through, for a CI log whose machine and worker logs are gone
        print(f"\nthe run's workers logged ({', '.join(str(p) for p in run['worker_logs'])}):")
        for line in log_digest(run["worker_logs"]) or ["      nothing above INFO"]:
            print(line)
    if run["broker_faults"]:
        print("\n| broker killed | down | longest commit stall (kill → a minute after restart) | first alert after "
              "the kill |\n|---|---|---|---|")
        for f in run["broker_faults"]:
            first_alert = "—" if f["first_alert_after_kill_s"] is None else f"{f['first_alert_after_kill_s']} s"
            print(f"| {f['broker']} ({f['role']}) | {f['down_s']} s | {f['longest_commit_stall_s']} s | {first_alert} |")
    return status


def run_evaluate(args: argparse.Namespace) -> int:
    if args.days <= 0 or args.scale <= 0:
        raise ZhijianError("--days and --scale must be positive")
    if args.workers < 1 or (args.kill_every is not None and args.kill_every <= 0):
        raise ZhijianError("--workers must be 1 or more and --kill-every a positive number of seconds")
    brokers, broker_faults = getattr(args, "brokers", 1), getattr(args, "broker_faults", False)
    if brokers < 1 or (broker_faults and brokers < 3):
        raise ZhijianError("--brokers must be 1 or more, and --broker-faults needs --brokers 3 or more (a broker of "
                           "a cluster is killed; a single one would take everything with it)")
    STATE_DIR.mkdir(exist_ok=True)
    sim = simulator_from_args(args)
    _progress(f"evaluate: {ensure_run_key()}")
    _progress(f"evaluate: seed {args.seed}, {args.days:g} simulated days, scale {args.scale:g} "
              f"({len(sim.region.institutions)} institutions, {len(sim.region.devices)} cold-chain devices)")
    plain = args.workers == 1 and not args.kill_every and brokers == 1
    layout = f"{args.workers} worker(s)" + (f", one killed every {args.kill_every:g} s" if args.kill_every else "")
    if brokers > 1:
        layout += f", {brokers} brokers" + (", the controller and a partition leader killed once each"
                                            if broker_faults else "")
    reference, reference_dead = (None, None) if plain else _reference(args)
    pseudonymize = Pseudonymizer.from_env()
    ledger = InstitutionLedger()  # the institution risk score's view of the same claims

    def learn(stream: str, event: dict[str, Any]) -> None:
        if stream == "claim":
            ledger.learn_claim({**event, "patient": pseudonymize(event["patient_id"])})

    run = run_pipeline(args, sim, args.workers, args.kill_every, "run", learn, brokers, broker_faults)
    produced, alerts = run["produced"], run["alerts"]
    # institution-wide fraud is ranked by the risk score (below), not matched to alerts
    truth = [i for i in incidents_from_truth(sim.truth, pseudonymize) if i.detectors != (RISK_SCORE,)]
    report = score(truth, [alert_for_scoring(a) for a in alerts.values()], events=sum(produced.values()),
                   until=sim.t0 + sim.cfg.days * DAY, device_weeks=len(sim.region.devices) * sim.cfg.days / 7)
    enabled = list(BY_NAME) if sim.cfg.scenarios is None else list(sim.cfg.scenarios)
    result = {
        "seed": args.seed, "days": args.days, "scale": args.scale, "workers": args.workers,
        "kill_every": args.kill_every, "kills": run["kills"],
        "events": dict(produced), "alerts": len(alerts), "wall_seconds": round(run["wall"], 1),
        "worker_peak_rss_mib": round(run["peak_rss"], 1), "brokers": brokers,
        "dead_letters": run["dead_letters"], "broker_faults": run["broker_faults"],
        "scenarios": {n: {"stream": BY_NAME[n].stream, "term": BY_NAME[n].term, "entity": BY_NAME[n].entity_kind,
                          "detectors": list(BY_NAME[n].detectors), "description": BY_NAME[n].description}
                      for n in enabled},
        **report_dict(report),
        "alert_index": alert_index(alerts),
    }
    for alert in alerts.values():
        ledger.learn_alert(alert)
    as_of = max((d for per in ledger.days.values() for d in per), default=None)
    if as_of is not None:
        ranking = compare_rankings(ledger, list(alerts.values()), positives(sim.truth), as_of, *registry(sim.region))
        result["institution_ranking"] = {k: v for k, v in ranking.items() if k != "scores"}
    print(markdown(report))
    if as_of is not None:
        print("\n### institutions ranked by the risk score (models/risk), against naive rankings\n")
        print(rank_markdown(ranking))
    print(f"\n{sum(produced.values()):,} events ({', '.join(f'{k} {v:,}' for k, v in sorted(produced.items()))}), "
          f"{len(alerts)} alerts, {result['wall_seconds']:.0f} s; {layout}, {run['kills']} kill(s)")
    status = _compared(result, reference, reference_dead, run, layout)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False))
    if args.truth:
        write_truth(Path(args.truth), sim.truth)
    return status
