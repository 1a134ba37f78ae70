"""``zhijian demo``, the main job: the embedded broker, a worker, the simulated region's traffic with its
scenarios, the workbench and the risk scorer, with the alerts printed as they come.

The lab's simulator and process helpers are imported when the demo runs, not when the command line loads: the
worker's process (``zhijian worker``) must carry none of the lab (``tests/test_house.py``)."""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import orjson

from connectors.alert_sink import AlertPrinter
from connectors.errors import ZhijianError
from connectors.kafka.broker import KAFKA_VERSION, EmbeddedBroker, ensure_topics, free_port, port_is_free
from connectors.kafka.follower import Tail
from connectors.kafka.producer import EnvelopeProducer
from streams.cli.common import STATE_DIR
from streams.settings import load_settings


def register(sub: Any) -> None:
    d = sub.add_parser("demo", help="embedded broker + worker + simulated traffic, alerts printed live")
    d.add_argument("--config", action="append", help="TOML config file, repeatable")
    d.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    d.add_argument("--alerts-out", help="also write every alert record as JSON lines to this file")
    d.add_argument("--metrics-port", type=int, default=9464, help="worker /metrics port (0 = pick a free one)")
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--speed", type=float, default=3600.0, help="simulated seconds per real second")
    d.add_argument("--scale", type=float, default=1.0, help="× the default region (24 institutions)")
    d.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    STATE_DIR.mkdir(exist_ok=True)
    demo = Demo(args)
    try:
        demo.start()
        demo.run()
    except KeyboardInterrupt:
        print("\ninterrupted; stopping …", file=sys.stderr)
    finally:
        demo.stop()
    print(f"\nproduced {sum(demo.produced.values())} events ({dict(demo.produced)}); "
          f"{demo.printer.count} alert records, new alerts by detector: {dict(demo.by_detector)}")
    return 0


class Demo:
    """The processes and the traffic of one demo run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.metrics_port = args.metrics_port or free_port()
        if not port_is_free(self.metrics_port):
            raise ZhijianError(f"port {self.metrics_port} for the worker's /metrics is in use (another zhijian demo or "
                               "worker?): stop it, or give this demo a free port with --metrics-port 0 "
                               "(make demo ARGS=\"--metrics-port 0\")")
        self.broker = EmbeddedBroker(data_dir=STATE_DIR / "kafka")
        owner = self.broker.owner()
        if owner is not None:
            raise ZhijianError(f"another zhijian demo runs in this folder (its broker, pid {owner[0]}, keeps "
                               f"{self.broker.data_dir}): stop it (Ctrl-C where it runs, or kill {owner[0]}), or run "
                               "this one from another folder")
        self.jsonl = open(args.alerts_out, "wb") if args.alerts_out else None
        self.printer = AlertPrinter(jsonl=self.jsonl)
        self.produced: Counter[str] = Counter()
        self.by_detector: Counter[str] = Counter()
        self.worker = self.console = self.risk = None
        self.producer: EnvelopeProducer | None = None
        self.tail: Tail | None = None
        # Ctrl-C (or SIGTERM) sets a flag the loop checks: a KeyboardInterrupt raised inside a Kafka client call can
        # be swallowed there, and the demo then ran on (CI caught it twice)
        self.interrupted: list[int] = []
        self._previous = {s: signal.signal(s, lambda signum, _: self.interrupted.append(signum))
                          for s in (signal.SIGINT, signal.SIGTERM)}

    def start(self) -> None:
        from streams.lab.processes import ensure_run_key, simulated_region_configs, start_worker_process
        from streams.lab.simulator import RegionSimulator, SimulationConfig, build_region

        print("zhijian demo: starting the embedded broker …", flush=True)
        # the demo's broker keeps its data (and the detectors' state) across runs: so does its key
        print(f"  {ensure_run_key(STATE_DIR / 'demo-pseudonym.key')}", flush=True)
        self.broker.start()
        bootstrap = self.broker.bootstrap_servers
        self.configs = simulated_region_configs(self.args.config, build_region(self.args.seed, self.args.scale))
        self.settings = load_settings(self.configs, overrides={"kafka": {"bootstrap_servers": bootstrap}})
        ensure_topics(self.settings.kafka, self.settings.topic_specs())
        # a living region: a month ago to now at `speed`, scenarios every week (4× the evaluation's rate); a second
        # run in this folder resumes the region where the first stopped — its clock and its ids — since the
        # broker kept what the first sent and the detectors' state (replaying the same month with the same claim
        # ids and other contents would be a month of duplicate charges)
        start, kept = resume_point(self.args.seed, self.args.scale)
        self.clock = start.timestamp()
        self.sim = RegionSimulator(SimulationConfig(seed=self.args.seed, days=7, scale=self.args.scale, start=start,
                                                    scenario_rate=4.0, warmup_days=0.1, repeat=True,
                                                    first_ids=kept["ids"] if kept else None,
                                                    first_visits=kept["visits"] if kept else None))
        if kept:
            print(f"  resuming the region at {start.isoformat()} where the last run in this folder stopped "
                  f"({REGION_FILE})", flush=True)
        # read from the end before the worker can write: the demo's broker keeps earlier runs' alerts
        self.tail = Tail(self.settings.kafka, [self.settings.topic("alerts")], from_end=True)
        self.worker = start_worker_process(bootstrap, self.metrics_port, STATE_DIR / "worker.log", self.configs)
        console_port, risk_port = free_port(), free_port()
        self.console, login = start_console(bootstrap, console_port)
        self.risk = start_risk(bootstrap, risk_port, self.configs)
        self._welcome(console_port, login, risk_port)
        self.producer = EnvelopeProducer(self.settings.kafka, self.settings.input_topics(),
                                         self.settings.topics.input_partitions)
        for table, records in self.sim.references().items():
            self.producer.send_keyed(self.settings.reference_topics()[table], records)

    def _welcome(self, console_port: int, login: str, risk_port: int) -> None:
        s = self.settings
        print(f"  broker   {self.broker.bootstrap_servers} (Apache Kafka {KAFKA_VERSION}, KRaft; data in "
              f"{self.broker.data_dir}, kept across runs)\n"
              f"  worker   pid {self.worker.pid}, log {STATE_DIR / 'worker.log'}\n"
              f"  metrics  http://127.0.0.1:{self.metrics_port}/metrics\n"
              f"  console  http://127.0.0.1:{console_port}/ (the workbench; {login})\n"
              f"  risk     institution scores each day to {s.topic('institution-scores')}, metrics "
              f"http://127.0.0.1:{risk_port}/metrics, log {STATE_DIR / 'risk.log'}\n"
              f"  traffic  {s.topics.prefix}{{prescriptions,claims,waste,telemetry}}: a simulated region of "
              f"{len(self.sim.region.institutions)} institutions and {len(self.sim.region.devices)} cold-chain devices "
              f"from 30 days ago, clock ×{self.args.speed:g}, risk scenarios (▸) mixed in\n"
              "  the worker joins its consumer group in a few seconds; alerts follow. Ctrl-C stops.\n", flush=True)

    def run(self) -> None:
        """The simulated clock runs at ``speed`` until the duration is over or a signal comes."""
        started = last = time.monotonic()
        clock = self.clock = self.sim.t0
        shown = 0
        while not self.interrupted and (self.args.duration is None or time.monotonic() - started < self.args.duration):
            now = time.monotonic()
            clock = min(clock + (now - last) * self.args.speed, time.time())
            last = now
            for stream, key, event in self.sim.until(clock):
                self.producer.add(stream, key, event)
                self.produced[stream] += 1
            self.producer.flush()
            self.clock = clock  # sent and acknowledged up to here: where a next run resumes
            for incident in self.sim.truth[shown:]:
                self.printer.scenario(incident)
            shown = len(self.sim.truth)
            for record in self.tail.poll(timeout_ms=250):
                alert = orjson.loads(record.value)
                self.printer(alert)
                if alert.get("status") == "open":
                    self.by_detector[alert["detector"]] += 1
            if self.worker.poll() is not None:
                raise ZhijianError(f"the worker exited with code {self.worker.returncode}: "
                                   f"{_last_line(STATE_DIR / 'worker.log')} (log {STATE_DIR / 'worker.log'})")
        if self.interrupted:
            print("\ninterrupted; stopping …", file=sys.stderr)

    def stop(self) -> None:
        from streams.lab.processes import stop_processes

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self.producer is not None:
            self.producer.close()
            save_resume_point(self.args.seed, self.args.scale, self.clock, self.sim.id_counters(),
                              self.sim.recent_visits())
        if self.tail is not None:
            self.tail.close()
        stop_processes([self.worker, self.console, self.risk])
        self.broker.stop()
        if self.jsonl is not None:
            self.jsonl.close()


REGION_FILE = STATE_DIR / "demo-region.json"
#: a resumed region is not older than this (a run after a month away starts a fresh month of history)
RESUME_WITHIN_S = 30 * 86400.0


def resume_point(seed: int, scale: float, now: float | None = None) -> tuple[datetime, dict[str, Any] | None]:
    """Where this run's region starts: where the last run of the same seed and scale in this folder stopped (its
    clock; and what it kept: its id counters and its last days' visits), else a month ago, nothing kept."""
    now = time.time() if now is None else now
    fresh = datetime.fromtimestamp(now - RESUME_WITHIN_S, timezone.utc).replace(microsecond=0)
    try:
        kept = json.loads(REGION_FILE.read_text())
        if kept["seed"] != seed or kept["scale"] != scale:
            return fresh, None
        clock = float(kept["clock"])
        state = {"ids": {str(k): int(v) for k, v in kept["ids"].items()},
                 "visits": {str(d): [[str(p), str(i)] for p, i in pairs] for d, pairs in kept.get("visits", {}).items()}}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return fresh, None  # no earlier run (or a file this version cannot read): a fresh region
    start = max(clock, now - RESUME_WITHIN_S)
    return datetime.fromtimestamp(min(start, now), timezone.utc).replace(microsecond=0), state


def save_resume_point(seed: int, scale: float, clock: float, ids: dict[str, int],
                      visits: dict[str, list[list[str]]]) -> None:
    REGION_FILE.write_text(json.dumps({"seed": seed, "scale": scale, "clock": clock, "ids": ids, "visits": visits}))


def _last_line(path: Any) -> str:
    """The last non-empty line of a log (what a process said before it died)."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip()[:300] if lines else "nothing in its log"


def start_console(bootstrap: str, port: int) -> tuple[Any, str]:
    """The workbench beside the demo, with a supervisor user made on the first run (its password kept, 0600,
    in .zhijian/console-demo-password); returns the process and how to sign in."""
    from streams.lab.simulator import REGION_CONFIG
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
    grids = REGION_CONFIG.with_name("grids.toml")
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "console", "--bootstrap-servers", bootstrap,
                             "--port", str(port), "--db", str(db), "--grids", str(grids)], stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ})
    return proc, f"user demo, password in {secret_file}"


def start_risk(bootstrap: str, port: int, configs: list[str]) -> Any:
    """The institution risk scorer beside the demo (zhijian risk), its log in .zhijian/risk.log."""
    log = open(STATE_DIR / "risk.log", "ab")
    cmd = [sys.executable, "-m", "streams.cli", "risk", "--bootstrap-servers", bootstrap, "--metrics-port", str(port)]
    for c in configs:
        cmd += ["--config", c]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
