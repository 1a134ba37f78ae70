"""The `zhijian` command line: demo, worker, broker, evaluate, simulate, replay, bench, nab."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from connectors.errors import ZhijianError

STATE_DIR = Path(".zhijian")


def _common_kafka(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", action="append", help="TOML config file, repeatable: later files override earlier "
                                                     "ones (default: $ZHIJIAN_CONFIG)")
    p.add_argument("--bootstrap-servers", help="Kafka bootstrap servers host:port[,...] (default 127.0.0.1:9092)")


def _settings(args: argparse.Namespace, **worker: Any):
    from streams.settings import load_settings

    return load_settings(args.config, overrides={
        "kafka": {"bootstrap_servers": getattr(args, "bootstrap_servers", None)},
        "worker": worker,
    })


def cmd_worker(args: argparse.Namespace) -> int:
    from connectors.kafka.broker import ensure_topics, wait_until_answers
    from streams.worker.app import run_worker

    from models.contracts.pseudonym import Pseudonymizer

    settings = _settings(args, metrics_port=args.metrics_port, metrics_host=args.metrics_host,
                         log_level=args.log_level)
    try:
        Pseudonymizer.from_env()
    except ValueError as e:  # no key, or one too short: patients would be re-identifiable
        raise ZhijianError(str(e)) from None
    wait_until_answers(settings.kafka, timeout=args.connect_timeout)
    if not args.no_create_topics:
        ensure_topics(settings.kafka, settings.topic_specs(), settings.topics.replication_factor)
    else:  # its own state changelogs are the worker's business, like Faust's internal topics
        ensure_topics(settings.kafka, settings.internal_topic_specs(), settings.topics.replication_factor)
    return run_worker(settings)


def cmd_topics(args: argparse.Namespace) -> int:
    from connectors.kafka.broker import ensure_topics, wait_until_answers

    settings = _settings(args)
    wait_until_answers(settings.kafka, timeout=args.connect_timeout)
    created = ensure_topics(settings.kafka, settings.topic_specs(), settings.topics.replication_factor)
    print(f"created {', '.join(created)}" if created else "every topic exists already")
    return 0


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def cmd_broker(args: argparse.Namespace) -> int:
    from connectors.kafka.broker import KAFKA_VERSION, ROLES, BrokerSecurity, EmbeddedBroker, apply_acls, ensure_topics, role_acls
    from streams.settings import load_settings

    security = None if args.security == "none" else BrokerSecurity(tls=args.security == "scram-tls")
    data_dir = None if args.ephemeral else Path(args.data_dir or STATE_DIR / (
        "kafka" if security is None else f"kafka-{args.security}"))
    with EmbeddedBroker(port=args.port, data_dir=data_dir, security=security) as broker:
        settings = load_settings(args.config, overrides={"kafka": {"bootstrap_servers": broker.bootstrap_servers}})
        ensure_topics(broker.connection, settings.topic_specs())
        where = "a temporary folder, removed at stop" if data_dir is None else f"{data_dir} (kept across restarts)"
        print(f"Apache Kafka {KAFKA_VERSION} (KRaft) on {broker.bootstrap_servers}, data in {where}\n"
              f"topics: {', '.join(s.name for s in settings.topic_specs())}", flush=True)
        if security is not None:
            apply_acls(broker.connection, role_acls(settings.topics.prefix, settings.worker.app_id,
                                                    list(settings.input_topics().values())
                                                    + list(settings.reference_topics().values())))
            clients = broker.data_dir / "clients"
            clients.mkdir(mode=0o700, exist_ok=True)
            print(f"{security.protocol} with {security.mechanism}, ACLs on; a --config file per principal:", flush=True)
            for role, purpose in ROLES.items():
                path = clients / f"{role}.toml"
                path.touch(mode=0o600)
                path.write_text(client_config(broker.connection_for(role)))
                print(f"  {path}  {purpose}", flush=True)
        print("Ctrl-C stops it", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            while broker.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


def client_config(conn: Any) -> str:
    """A ``--config`` TOML file with one principal's connection settings."""
    fields = {"bootstrap_servers": conn.bootstrap_servers, "security_protocol": conn.security_protocol,
              "sasl_mechanism": conn.sasl_mechanism, "sasl_username": conn.sasl_username,
              "sasl_password": conn.sasl_password, "ssl_cafile": conn.ssl_cafile}
    return "[kafka]\n" + "".join(f'{k} = "{v}"\n' for k, v in fields.items() if v)


def start_demo_console(bootstrap: str, port: int) -> tuple[Any, str]:
    """The workbench beside the demo, with a supervisor user made on the first run (its password kept, 0600,
    in .zhijian/console-demo-password); returns the process and how to sign in."""
    import os
    import secrets
    import subprocess

    from streams.workbench.store import Store

    db = STATE_DIR / "console.db"
    secret_file = STATE_DIR / "console-demo-password"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(12))
        secret_file.chmod(0o600)
    password = secret_file.read_text().strip()
    store = Store(db)
    if store.check_password("demo", password) is None:
        store.add_user("demo", "supervisor", password)
    store.db.close()
    log = open(STATE_DIR / "console.log", "ab")
    from streams.lab.simulator import REGION_CONFIG

    grids = REGION_CONFIG.with_name("grids.toml")
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "console", "--bootstrap-servers", bootstrap,
                             "--port", str(port), "--db", str(db), "--grids", str(grids)], stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ})
    return proc, f"user demo, password in {secret_file}"


def start_demo_risk(bootstrap: str, port: int, configs: list[str]) -> Any:
    """The institution risk scorer beside the demo (zhijian risk), its log in .zhijian/risk.log."""
    import os
    import subprocess

    log = open(STATE_DIR / "risk.log", "ab")
    cmd = [sys.executable, "-m", "streams.cli", "risk", "--bootstrap-servers", bootstrap, "--metrics-port", str(port)]
    for c in configs:
        cmd += ["--config", c]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})


def cmd_demo(args: argparse.Namespace) -> int:
    from connectors.alert_sink import AlertPrinter, AlertTail
    from streams.lab.processes import ensure_run_key, simulated_region_configs, start_worker_process, stop_processes
    from connectors.kafka.broker import KAFKA_VERSION, EmbeddedBroker, ensure_topics, free_port
    from connectors.kafka.producer import EnvelopeProducer
    from streams.lab.simulator import RegionSimulator, SimulationConfig
    from streams.settings import load_settings

    STATE_DIR.mkdir(exist_ok=True)
    metrics_port = args.metrics_port or free_port()
    jsonl = open(args.alerts_out, "wb") if args.alerts_out else None
    print("zhijian demo: starting the embedded broker …", flush=True)
    # the demo's broker keeps its data (and the detectors' state) across runs: so does its key
    print(f"  {ensure_run_key(STATE_DIR / 'demo-pseudonym.key')}", flush=True)
    broker = EmbeddedBroker(data_dir=STATE_DIR / "kafka")
    worker = console = risk = None
    producer = tail = None
    printer = AlertPrinter(jsonl=jsonl)
    produced: Counter[str] = Counter()
    by_detector: Counter[str] = Counter()
    # Ctrl-C (or SIGTERM) sets a flag the loop checks: a KeyboardInterrupt raised inside a Kafka client call can be
    # swallowed there, and the demo then ran on (CI caught it twice)
    interrupted: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        interrupted.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        broker.start()
        configs = simulated_region_configs(args.config)
        settings = load_settings(configs, overrides={"kafka": {"bootstrap_servers": broker.bootstrap_servers}})
        ensure_topics(settings.kafka, settings.topic_specs())
        # a living region: a month ago to now at `speed`, scenarios every week (4× the evaluation's rate)
        start = (datetime.now(timezone.utc) - timedelta(days=30)).replace(microsecond=0)
        sim = RegionSimulator(SimulationConfig(seed=args.seed, days=7, scale=args.scale, start=start,
                                               scenario_rate=4.0, warmup_days=0.1, repeat=True))
        tail = AlertTail(settings.kafka, settings.topic("alerts"), from_end=True)  # before the worker can write
        worker = start_worker_process(broker.bootstrap_servers, metrics_port, STATE_DIR / "worker.log", configs)
        console_port = free_port()
        console, console_login = start_demo_console(broker.bootstrap_servers, console_port)
        risk_port = free_port()
        risk = start_demo_risk(broker.bootstrap_servers, risk_port, configs)
        print(f"  broker   {broker.bootstrap_servers} (Apache Kafka {KAFKA_VERSION}, KRaft; data in "
              f"{broker.data_dir}, kept across runs)\n"
              f"  worker   pid {worker.pid}, log {STATE_DIR / 'worker.log'}\n"
              f"  metrics  http://127.0.0.1:{metrics_port}/metrics\n"
              f"  console  http://127.0.0.1:{console_port}/ (the workbench; {console_login})\n"
              f"  risk     institution scores each day to {settings.topic('institution-scores')}, metrics "
              f"http://127.0.0.1:{risk_port}/metrics, log {STATE_DIR / 'risk.log'}\n"
              f"  traffic  {settings.topics.prefix}{{prescriptions,claims,waste,telemetry}}: a simulated region of "
              f"{len(sim.region.institutions)} institutions and {len(sim.region.devices)} cold-chain devices from "
              f"30 days ago, clock ×{args.speed:g}, risk scenarios (▸) mixed in\n"
              "  the worker joins its consumer group in a few seconds; alerts follow. Ctrl-C stops.\n", flush=True)
        topics = settings.input_topics()
        producer = EnvelopeProducer(settings.kafka, topics, settings.topics.input_partitions)
        for table, records in sim.references().items():
            producer.send_keyed(settings.reference_topics()[table], records)
        started = last = time.monotonic()
        clock = sim.t0
        shown = 0
        while not interrupted and (args.duration is None or time.monotonic() - started < args.duration):
            now = time.monotonic()
            clock = min(clock + (now - last) * args.speed, time.time())
            last = now
            for stream, key, event in sim.until(clock):
                producer.add(stream, key, event)
                produced[stream] += 1
            producer.flush()
            for incident in sim.truth[shown:]:
                printer.scenario(incident)
            shown = len(sim.truth)
            for _, alert in tail.poll(timeout_ms=250):
                printer(alert)
                if alert.get("status") == "open":
                    by_detector[alert["detector"]] += 1
            if worker.poll() is not None:
                raise ZhijianError(f"the worker exited with code {worker.returncode}; see {STATE_DIR / 'worker.log'}")
        if interrupted:
            print("\ninterrupted; stopping …", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping …", file=sys.stderr)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if producer is not None:
            producer.close()
        if tail is not None:
            tail.close()
        stop_processes([worker, console, risk])
        broker.stop()
        if jsonl is not None:
            jsonl.close()
    print(f"\nproduced {sum(produced.values())} events ({dict(produced)}); "
          f"{printer.count} alert records, new alerts by detector: {dict(by_detector)}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from connectors.kafka.broker import wait_until_answers
    from connectors.files.mapping import Mapping
    from connectors.kafka.producer import EnvelopeProducer
    from connectors.files.replay import Progress, Refused, load_sources, replay

    settings = _settings(args)
    joins = {}
    for spec in args.join or []:
        name, sep, path = spec.partition("=")
        if not sep:
            raise ZhijianError(f"--join {spec!r} must be NAME=PATH, NAME a [join.NAME] table of the mapping")
        joins[name] = path
    mappings = {}
    for spec in args.map or []:
        target, sep, path = spec.partition("=")
        loaded_stream, mapping = Mapping.load(path if sep else spec, joins)
        mappings[target if sep else loaded_stream] = mapping
    unused = set(joins) - {j.name for m in mappings.values() for j in m.joins}
    if unused:
        raise ZhijianError(f"--join {', '.join(sorted(unused))}: no --map file has such a [join.NAME] table")
    records = load_sources(args.sources, mappings)
    wait_until_answers(settings.kafka, timeout=15)
    topics = settings.input_topics()
    references = settings.reference_topics()
    producer = EnvelopeProducer(settings.kafka, topics, settings.topics.input_partitions, max_batch=args.batch)
    try:
        sent = replay(records, producer, args.rate, Progress(len(records), force=args.progress), references,
                      settings.topic("deadletter"))
    finally:
        producer.close()
    refused = sum(isinstance(e, Refused) for _, _, e in records)
    names = sorted({(references | topics)[s] for _, s, e in records if not isinstance(e, Refused)})
    print(f"replayed {sent - refused} events to {', '.join(names)}"
          + (f"; {refused} rows refused by the mapping went to {settings.topic('deadletter')}" if refused else ""))
    for _, _, e in [r for r in records if isinstance(r[2], Refused)][:5]:
        print(f"  refused: {e.detail}", file=sys.stderr)
    return 0


def cmd_import_fridge_tag(args: argparse.Namespace) -> int:
    """Berlinger Fridge-tag / Q-tag exports: readings to the telemetry topic (or a file), daily summaries to a file."""
    import json
    from datetime import timezone

    from connectors.files.fridge_tag import FridgeTagError, parse, telemetry_events

    try:
        sign = -1 if args.tz.startswith("-") else 1
        hours, _, minutes = args.tz.lstrip("+-").partition(":")
        tz = timezone(sign * timedelta(hours=int(hours), minutes=int(minutes or 0)))
    except ValueError:
        raise ZhijianError(f"--tz {args.tz!r}: give the loggers' UTC offset as +08:00") from None
    exports = []
    for path in args.files:
        try:
            exports.append((path, parse(Path(path).read_text(encoding="utf-8", errors="replace"))))
        except OSError as e:
            raise ZhijianError(f"{path}: cannot read it ({e.strerror})") from None
        except FridgeTagError as e:
            raise ZhijianError(f"{path}: {e} — not a Fridge-tag or Q-tag export as the logger writes it") from None
    events = []
    summaries = []
    print(f"{'file':44}{'device':28}{'serial':>14}{'days':>6}{'alarm days':>12}{'readings':>10}")
    for path, export in exports:
        mine = telemetry_events(export, tz, args.facility, args.device_kind, args.region)
        events += mine
        alarm_days = sum(any(d.alarmed.values()) for d in export.days)
        print(f"{Path(path).name[:43]:44}{export.device[:27]:28}{export.serial:>14}{len(export.days):>6}"
              f"{alarm_days:>12}{len(mine):>10}")
        for d in export.days:
            summaries.append({"device_id": export.serial, "device": export.device, "facility_id": args.facility,
                              "day": d.day, "min_c": d.min_c, "max_c": d.max_c, "mean_c": d.mean_c,
                              "alarm_minutes": d.alarm_minutes, "alarmed": d.alarmed,
                              "sensor_timeout_minutes": d.sensor_timeout_minutes,
                              "rules": [r.__dict__ for r in export.rules]})
    if args.agreement:
        from streams.lab.agreement import agreement

        print(f"\nagreement with the loggers' own alarms, per day and rule (zhijian's excursion rule at each logger's "
              f"thresholds):\n{'file':44}{'days':>6}{'agree':>7}{'low: both/logger/zhijian':>26}"
              f"{'high: both/logger/zhijian':>27}")
        for path, export in exports:
            a = agreement(export, tz)
            if a is None:
                continue
            lo, hi = a.by_rule["low"], a.by_rule["high"]
            print(f"{Path(path).name[:43]:44}{a.days:>6}{a.agree:>7}"
                  f"{lo['both']:>16}/{lo['logger_only']}/{lo['zhijian_only']:<6}"
                  f"{hi['both']:>17}/{hi['logger_only']}/{hi['zhijian_only']:<6}")
            for d in a.disagreements:
                print(f"    {d['day']} {d['rule']}: logger {'alarm' if d['logger'] else 'no alarm'} "
                      f"({d['logger_minutes']:g} min counted), zhijian {'breach' if d['zhijian'] else 'none'}; "
                      f"min {d['min_c']} °C, max {d['max_c']} °C")
        from streams.lab.agreement import alarm_agreement

        for path, export in exports:
            rows = alarm_agreement(export, tz)
            if not rows:
                continue
            print(f"\n{Path(path).name}: the logger's own alarms (Res:) beside zhijian's at its thresholds, an alarm "
                  f"matching within two logging intervals")
            for r in rows:
                ours = "(no such rule)" if r.zhijian is None else ", ".join(r.zhijian) or "none"
                print(f"    rule {r.rule} {r.direction} {r.mode} {r.threshold_c:g} °C / {r.minutes:g} min: logger "
                      f"{', '.join(r.logger) or 'none'}; zhijian {ours}; matched {r.matched}/{len(r.logger)}")
    if args.summaries:
        Path(args.summaries).write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in summaries))
        print(f"{len(summaries)} daily summaries written to {args.summaries}")
    if args.out:
        Path(args.out).write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events))
        print(f"{len(events)} telemetry events written to {args.out}")
        return 0
    from connectors.kafka.broker import wait_until_answers
    from connectors.kafka.producer import EnvelopeProducer

    settings = _settings(args)
    wait_until_answers(settings.kafka, timeout=15)
    topics = settings.input_topics()
    producer = EnvelopeProducer(settings.kafka, topics, settings.topics.input_partitions)
    try:  # the loggers' readings merged in event-time order, as a replay sends them (each partition's clock moves on)
        for e in sorted(events, key=lambda e: datetime.fromisoformat(e["event_time"]).timestamp()):
            producer.add("telemetry", e["device_id"], e)
        producer.flush()
    finally:
        producer.close()
    print(f"{len(events)} readings sent to {topics['telemetry']}")
    if args.agreement:
        from streams.lab.agreement import through_worker

        rows = through_worker(settings, exports, tz, timeout=args.timeout)
        print(f"\nagreement through the worker (group {settings.worker.app_id!r}, its own excursion rule as "
              f"configured), per day and rule:\n{'file':44}{'days':>6}{'agree':>7}{'low: both/logger/zhijian':>26}"
              f"{'high: both/logger/zhijian':>27}")
        for path, a, differ in rows:
            if a is None:
                print(f"{Path(path).name[:43]:44}   (readings and a daily history are both needed: nothing to compare per day)")
                continue
            lo, hi = a.by_rule["low"], a.by_rule["high"]
            print(f"{Path(path).name[:43]:44}{a.days:>6}{a.agree:>7}"
                  f"{lo['both']:>16}/{lo['logger_only']}/{lo['zhijian_only']:<6}"
                  f"{hi['both']:>17}/{hi['logger_only']}/{hi['zhijian_only']:<6}")
            if differ:
                print(f"    the worker's rule is not the logger's: {'; '.join(differ)}")
            for d in a.disagreements:
                print(f"    {d['day']} {d['rule']}: logger {'alarm' if d['logger'] else 'no alarm'} "
                      f"({d['logger_minutes']:g} min counted), worker {'breach' if d['zhijian'] else 'none'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from streams.lab.evaluate import run_evaluate

    return run_evaluate(args)


def cmd_rank(args: argparse.Namespace) -> int:
    from streams.lab.rank import run_rank

    return run_rank(args)


def cmd_simulate(args: argparse.Namespace) -> int:
    from streams.lab.processes import simulator_from_args
    from streams.lab.simulator.files import write_simulation

    sim = simulator_from_args(args)
    counts = write_simulation(sim, Path(args.out), args.days)
    print(f"wrote {sum(counts.values()):,} events ({', '.join(f'{k} {v:,}' for k, v in sorted(counts.items()))}) "
          f"and {len(sim.truth)} ground-truth incidents to {args.out}/; replay with: zhijian replay "
          + " ".join(f"{s}={args.out}/{s}.jsonl" for s in sorted(counts)))
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    import asyncio

    from connectors.kafka.broker import wait_until_answers
    from streams.workbench.console import serve
    from streams.workbench.store import Store, StoreError

    settings = _settings(args)
    try:
        store = Store(args.db)
    except StoreError as e:
        raise ZhijianError(f"--db: {e}") from None
    if store.users() == 0:
        raise ZhijianError(f"no user in {args.db}: add one with `zhijian console-user NAME --role analyst`")
    grids = {}
    if args.grids:
        import tomllib

        try:
            grids = tomllib.loads(Path(args.grids).read_text()).get("grids", {})
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ZhijianError(f"--grids {args.grids}: {e}; give a TOML file with a [grids] table, region = grid") from None
        if not isinstance(grids, dict) or not all(isinstance(v, str) for v in grids.values()):
            raise ZhijianError(f"--grids {args.grids}: the [grids] table maps a region code to a grid name")
    wait_until_answers(settings.kafka, timeout=30)
    asyncio.run(serve(settings.kafka, settings.topic("alerts"), settings.topic("case-events"), store, args.host,
                      args.port, settings.topic("institution-scores"), grids, settings.topic("watchlist")))
    return 0


def cmd_triage(args: argparse.Namespace) -> int:
    from streams.lab.triage import run_triage

    return run_triage(args)


def cmd_console_bench(args: argparse.Namespace) -> int:
    from streams.lab.console_bench import run_console_bench

    return run_console_bench(args)


def cmd_console_user(args: argparse.Namespace) -> int:
    import getpass
    import os

    from streams.workbench.store import Store, StoreError, _redacted, is_url

    password = os.environ.get("ZHIJIAN_CONSOLE_PASSWORD") or getpass.getpass(f"password for {args.name}: ")
    try:
        Store(args.db).add_user(args.name, args.role, password)
    except StoreError as e:
        raise ZhijianError(f"{e}") from None
    print(f"user {args.name} ({args.role}) saved in {_redacted(args.db) if is_url(args.db) else args.db}")
    return 0


def cmd_risk(args: argparse.Namespace) -> int:
    from connectors.kafka.broker import wait_until_answers
    from models.contracts.pseudonym import Pseudonymizer
    from streams.workbench.risk.scorer import run

    settings = _settings(args)
    wait_until_answers(settings.kafka, timeout=30)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(settings.kafka, settings.topic("claims"), settings.topic("alerts"), settings.topic("institution-scores"),
        settings.worker.app_id, settings.risk, Pseudonymizer.from_env(), metrics_port=args.metrics_port,
        idle_close_s=args.idle_close, follow_worker=not args.no_follow_worker)
    return 0


def cmd_nab(args: argparse.Namespace) -> int:
    from streams.lab.nab import run_nab

    return run_nab(args)


def cmd_fuzz(args: argparse.Namespace) -> int:
    from streams.lab.fuzz import run_fuzz

    return run_fuzz(args)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.entities:
        from streams.lab.entities import run_entities

        rows = run_entities(args.entities)
        if args.json:
            Path(args.json).write_text(__import__("json").dumps(rows, indent=2))
        return 0
    from streams.lab.bench import run_bench

    return run_bench(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zhijian", description="智监 streaming risk monitoring for healthcare supervision")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="embedded broker + worker + simulated traffic, alerts printed live")
    d.add_argument("--config", action="append", help="TOML config file, repeatable")
    d.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    d.add_argument("--alerts-out", help="also write every alert record as JSON lines to this file")
    d.add_argument("--metrics-port", type=int, default=9464, help="worker /metrics port (0 = pick a free one)")
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--speed", type=float, default=3600.0, help="simulated seconds per real second")
    d.add_argument("--scale", type=float, default=1.0, help="× the default region (24 institutions)")
    d.set_defaults(func=cmd_demo)

    w = sub.add_parser("worker", help="run the Faust worker against a Kafka cluster")
    _common_kafka(w)
    w.add_argument("--metrics-port", type=int, help="serve /metrics on this port (default 9464, 0 = off)")
    w.add_argument("--metrics-host", help="bind address of /metrics (default 127.0.0.1)")
    w.add_argument("--log-level", help="WARNING (default), INFO, DEBUG")
    w.add_argument("--connect-timeout", type=float, default=15.0)
    w.add_argument("--no-create-topics", action="store_true", help="do not create missing topics")
    w.set_defaults(func=cmd_worker)

    t = sub.add_parser("topics", help="create the topics that do not exist yet (partitions and replication from the "
                                      "settings), then exit")
    _common_kafka(t)
    t.add_argument("--connect-timeout", type=float, default=60.0)
    t.set_defaults(func=cmd_topics)

    b = sub.add_parser("broker", help="run the embedded Apache Kafka broker (KRaft) in the foreground with the "
                                      "topics created")
    b.add_argument("--config", action="append", help="TOML config file, repeatable")
    b.add_argument("--port", type=int, default=9092)
    b.add_argument("--data-dir", help="log directory, formatted on first start and kept (default .zhijian/kafka, "
                                      ".zhijian/kafka-scram or .zhijian/kafka-scram-tls)")
    b.add_argument("--ephemeral", action="store_true", help="keep the log in a temporary folder removed at stop")
    b.add_argument("--security", choices=("none", "scram", "scram-tls"), default="none",
                   help="SASL/SCRAM (and TLS with a generated self-signed certificate) with ACLs per principal")
    b.set_defaults(func=cmd_broker)

    be = sub.add_parser("bench", help="throughput and latency of the worker beside a raw aiokafka consumer")
    im = sub.add_parser("import", help="import logger exports (Berlinger Fridge-tag / Q-tag) as telemetry")
    im_sub = im.add_subparsers(dest="format", required=True)
    ft = im_sub.add_parser("fridge-tag", help="Fridge-tag 2 / 2 L / Ultra Low and Q-tag text exports")
    _common_kafka(ft)
    ft.add_argument("files", nargs="+", metavar="FILE")
    ft.add_argument("--tz", default="+08:00", help="the loggers' UTC offset: their times carry no zone (default +08:00)")
    ft.add_argument("--facility", default="unknown", help="the facility the loggers sit in (facility_id)")
    ft.add_argument("--device-kind", default="fridge", choices=("fridge", "cold_room", "vehicle", "carrier"))
    ft.add_argument("--region", help="the facility's region code")
    ft.add_argument("--out", help="write the telemetry events to this JSON-lines file instead of the topic")
    ft.add_argument("--summaries", help="write the loggers' daily summaries (min/max/mean, alarm minutes) here")
    ft.add_argument("--agreement", action="store_true", help="compare zhijian's excursion rule with the alarms each "
                                                             "logger recorded, per day and rule (exports with readings "
                                                             "and daily history); sent to a broker, the running "
                                                             "worker's alerts are compared too")
    ft.add_argument("--timeout", type=float, default=300.0, help="with --agreement and a broker: how long to wait "
                                                                   "for the worker to judge the readings (s)")
    ft.set_defaults(func=cmd_import_fridge_tag)

    fz = sub.add_parser("fuzz", help="garbage and near-valid records through the real worker: every event judged or "
                                     "refused, no agent crash")
    fz.add_argument("--records", type=int, default=100_000, help="records per stream")
    fz.add_argument("--seed", type=int, default=1)
    fz.add_argument("--timeout", type=float, default=1800)
    fz.add_argument("--json", help="write the figures to this file")
    fz.set_defaults(func=cmd_fuzz)

    be.add_argument("--events", type=int, default=200_000)
    be.add_argument("--workers", type=int, default=1, help="worker processes sharing the work")
    be.add_argument("--batch", type=int, default=500, help="events per envelope (1 = one event per record)")
    be.add_argument("--latency-rate", type=float, default=2000, help="events/s of the paced latency phase")
    be.add_argument("--latency-seconds", type=float, default=10)
    be.add_argument("--latency-batch", type=int, default=20, help="events per envelope in the latency phase")
    be.add_argument("--json", help="write the figures to this file")
    be.add_argument("--entities", type=int, metavar="N",
                    help="instead: in process, N distinct entities per stream through the detectors — state memory "
                         "per entity and its expiry by event time")
    be.set_defaults(func=cmd_bench)

    r = sub.add_parser("replay", help="produce JSON-lines or CSV files to the input topics, in event-time order")
    _common_kafka(r)
    r.add_argument("sources", nargs="+", metavar="STREAM=PATH",
                   help="e.g. telemetry=readings.jsonl claim=medical_claim.csv (STREAM: prescription, claim, waste, "
                        "telemetry, or the reference data beneficiary, inventory: produced first)")
    r.add_argument("--map", action="append", metavar="STREAM=MAPPING.toml",
                   help="column mapping for CSV files, per stream or per file (medical_claim.csv=tuva_medical_claim.toml)")
    r.add_argument("--join", action="append", metavar="NAME=PATH", help="the file of a mapping's [join.NAME] table")
    r.add_argument("--rate", type=float, help="at most this many events per second (default: as fast as possible)")
    r.add_argument("--batch", type=int, default=1, help="events per Kafka record (envelopes); 1 = one event each")
    r.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is not a terminal")
    r.set_defaults(func=cmd_replay)

    def scenario_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--seed", type=int, default=7)
        sp.add_argument("--days", type=float, default=30.0, help="simulated days")
        sp.add_argument("--scale", type=float, default=1.0, help="× the default region (24 institutions)")
        sp.add_argument("--scenario", dest="scenarios", action="append", metavar="NAME",
                        help="only this scenario (repeatable); --no-scenarios for clean traffic")
        sp.add_argument("--no-scenarios", dest="scenarios", action="store_const", const=[],
                        help="clean traffic only")

    ev = sub.add_parser("evaluate", help="simulate a region with labelled scenarios through the real worker and "
                                         "score detection per scenario")
    ev.add_argument("--config", action="append", help="TOML config file, repeatable (after the simulated "
                                                      "region's dictionaries)")
    scenario_args(ev)
    ev.add_argument("--json", help="write the full report to this file")
    ev.add_argument("--truth", help="write the ground truth (JSON lines) to this file")
    ev.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the worker to drain")
    ev.add_argument("--workers", type=int, default=1, help="worker processes sharing the work (default 1)")
    ev.add_argument("--kill-every", type=float, metavar="SECONDS",
                    help="SIGKILL a worker on this period and start a replacement; with --workers > 1 or this, "
                         "the alert set is compared by id with a one-worker uninterrupted run of the same seed")
    ev.add_argument("--reference", metavar="JSON", help="the --json of an earlier one-worker run to compare with "
                                                        "(instead of running it first)")
    ev.set_defaults(func=cmd_evaluate)

    rs = sub.add_parser("risk", help="the institution risk score: follow the claims and alerts, publish every "
                                     "institution's score and grade each day to zhijian.institution-scores")
    _common_kafka(rs)
    rs.add_argument("--metrics-port", type=int, default=9465, help="Prometheus endpoint (0: none; default 9465)")
    rs.add_argument("--idle-close", type=float, default=60.0, metavar="SECONDS",
                    help="publish the newest, incomplete day after this long without new claims (default 60)")
    rs.add_argument("--no-follow-worker", action="store_true",
                    help="read the claims to their end instead of up to the worker's committed offsets")
    rs.set_defaults(func=cmd_risk)

    rk = sub.add_parser("rank", help="rank the simulated institutions by the risk score and by naive rankings "
                                     "(volume, alert counts): ROC-AUC and precision@k per seed, in process")
    rk.add_argument("--seeds", type=int, nargs="+", default=[7], help="simulator seeds (default 7)")
    rk.add_argument("--days", type=float, default=30.0, help="simulated days (default 30)")
    rk.add_argument("--scale", type=float, default=1.0, help="× the default region (default 1)")
    rk.add_argument("--json", help="write the full results to this file")
    rk.set_defaults(func=cmd_rank)

    si = sub.add_parser("simulate", help="write the simulated region's events (one JSON-lines file per stream) "
                                         "and its ground truth to a directory")
    scenario_args(si)
    si.add_argument("--out", required=True, help="directory to write into")
    si.set_defaults(func=cmd_simulate)

    co = sub.add_parser("console", help="the workbench: cases from the alert topic, triaged in a browser")
    _common_kafka(co)
    co.add_argument("--host", default="127.0.0.1")
    co.add_argument("--port", type=int, default=8480)
    co.add_argument("--db", default=str(STATE_DIR / "console.db"), help="SQLite store of users and case events")
    co.add_argument("--grids", metavar="TOML", help="region → grid 网格 table ([grids] \"310101\" = \"Huangpu\"): cases "
                                                    "go to the grid of their region")
    co.set_defaults(func=cmd_console)
    tr = sub.add_parser("triage", help="precision of the workbench queue's top 20 before and after 50 and 200 "
                                       "verdicts of a simulated analyst, learned order against the rules' own")
    tr.add_argument("--seeds", type=int, nargs="+", default=[7])
    tr.add_argument("--days", type=float, default=30.0)
    tr.add_argument("--scale", type=float, default=1.0)
    tr.add_argument("--scenario-rate", type=float, default=3.0, help="× each scenario's and look-alike's instances "
                                                                     "(enough cases for 200 verdicts)")
    tr.set_defaults(func=cmd_triage)
    cb = sub.add_parser("console-bench", help="cases built per second and page times with many cases in the "
                                              "workbench, beside references measured in the same run")
    cb.add_argument("--cases", type=int, default=100_000)
    cb.add_argument("--requests", type=int, default=30, help="requests per page")
    cb.add_argument("--seed", type=int, default=1)
    cb.add_argument("--json", help="write the figures to this file")
    cb.set_defaults(func=cmd_console_bench)
    cu = sub.add_parser("console-user", help="add or replace a workbench user (password from "
                                             "$ZHIJIAN_CONSOLE_PASSWORD or a prompt)")
    cu.add_argument("name")
    cu.add_argument("--role", required=True, choices=("analyst", "operator", "supervisor"))
    cu.add_argument("--db", default=str(STATE_DIR / "console.db"))
    cu.set_defaults(func=cmd_console_user)

    n = sub.add_parser("nab", help="NAB-style scores of the temperature-dynamics detector on NAB's real series")
    n.add_argument("--data", help="the NAB folder with data/ and labels/ (default: ../shared/data/nab)")
    n.add_argument("--json", help="write the scores to this file")
    n.set_defaults(func=cmd_nab)

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
