"""`zhijian fuzz`: garbage and near-valid records through the real worker, accounted for.

N records per stream, drawn from a seeded generator — random bytes, JSON of any shape, the
contracts' examples with fields dropped, retyped, set to extreme values or nested past the
encoder's limit, envelopes mixing good and bad events, a few records near Kafka's size limit — go
to the input topics of a fresh embedded broker. The worker must read them all, judge or refuse
every event (``zhijian_events_read_total`` = ``zhijian_events_total`` +
``zhijian_events_refused_total`` per stream), and never crash or restart an agent (its log is
searched for it). The same generator, smaller, is what ``tests/test_fuzz.py`` checks in process.
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer

from connectors.errors import ZhijianError
from connectors.kafka.broker import EmbeddedBroker, ensure_topics, free_port
from models.contracts.records import load_schema
from streams.lab.bench import scrape
from streams.lab.evaluate import drained
from streams.lab.processes import ensure_run_key, start_worker_process, stop_process
from streams.settings import load_settings

STATE_DIR = Path(".zhijian")
ODD_STRINGS = ["0000-01-01", "9999-12-31T23:59:59+14:00", "2026-02-30", "", "NaN", "\u202e", "\x1b[31m", "1e309",
               "-0", "2026-11-24T03:05:00", "\u200b", "x" * 5000, "null", "{}"]


class RecordFuzzer:
    """Seeded generator of records for one stream (bytes, as a producer would send them).

    >>> f = RecordFuzzer("telemetry", seed=1)
    >>> records = [f.record() for _ in range(200)]
    >>> len(records), all(isinstance(r, bytes) for r in records)
    (200, True)
    >>> RecordFuzzer("telemetry", seed=1).record() == RecordFuzzer("telemetry", seed=1).record()
    True
    """

    def __init__(self, stream: str, seed: int) -> None:
        self.stream = stream
        self.rng = random.Random(f"{stream}/{seed}")
        self.examples = load_schema(stream)["examples"]

    def scalar(self) -> Any:
        r = self.rng
        return r.choice([None, True, False, r.randint(-2**70, 2**70), r.uniform(-1e308, 1e308), r.random(),
                         r.choice(ODD_STRINGS), "".join(chr(r.randint(0, 0x2FFF)) for _ in range(r.randint(0, 12)))])

    def value(self, depth: int = 0) -> Any:
        r = self.rng.random()
        if depth > 3 or r < 0.6:
            return self.scalar()
        if r < 0.8:
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        return {str(self.scalar())[:10]: self.value(depth + 1) for _ in range(self.rng.randint(0, 4))}

    def event(self) -> Any:
        e = copy.deepcopy(self.rng.choice(self.examples))
        for _ in range(self.rng.randint(0, 3)):
            field = self.rng.choice(sorted(e) + ["extra", "_t", "patient"])
            action = self.rng.random()
            if action < 0.3:
                e.pop(field, None)
            elif action < 0.9:
                e[field] = self.value()
            else:
                depth = self.rng.randint(100, 400)
                e[field] = orjson.Fragment(b"[" * depth + b"]" * depth)
        return e

    def record(self) -> bytes:
        r = self.rng.random()
        if r < 0.1:
            return bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(0, 200)))
        if r < 0.2:
            return self._encode(self.value())
        if r < 0.75:
            return self._encode(self.event())
        if r < 0.999:
            return self._encode([self.event() if self.rng.random() < 0.8 else self.value()
                                 for _ in range(self.rng.randint(1, 8))])
        return b'{"schema_version": 1, "pad": "' + b"x" * (950 * 1024) + b'"}'  # near Kafka's record limit

    @staticmethod
    def _encode(value: Any) -> bytes:
        try:
            return orjson.dumps(value)
        except (TypeError, orjson.JSONEncodeError):
            return b"[" * 600 + b"]" * 600


def run_fuzz(args: argparse.Namespace) -> int:
    if args.records <= 0:
        raise ZhijianError("--records must be positive")
    STATE_DIR.mkdir(exist_ok=True)
    print(ensure_run_key(), flush=True)
    started = time.monotonic()
    log = STATE_DIR / "fuzz-worker.log"
    log.unlink(missing_ok=True)
    with EmbeddedBroker(log_path=STATE_DIR / "fuzz-broker.log") as broker:
        settings = load_settings(overrides={"kafka": {"bootstrap_servers": broker.bootstrap_servers}})
        ensure_topics(settings.kafka, settings.topic_specs())
        port = free_port()
        worker = start_worker_process(broker.bootstrap_servers, port, log)
        try:
            producer = KafkaProducer(**settings.kafka.kafka_python(), linger_ms=20, max_request_size=2 * 1024 * 1024,
                                     acks=1, enable_idempotence=False)
            sent = {}
            for stream, topic in settings.input_topics().items():
                fuzzer = RecordFuzzer(stream, args.seed)
                for i in range(args.records):
                    producer.send(topic, value=fuzzer.record(), key=str(i % 97).encode())
                producer.flush()
                sent[stream] = args.records
                print(f"  {stream}: {args.records:,} records sent", flush=True)
            producer.close()
            consumed = list(settings.input_topics().values())
            deadline = time.monotonic() + args.timeout
            while not drained(settings.kafka, settings.worker.app_id, consumed)[0]:
                if worker.poll() is not None:
                    raise ZhijianError(f"the worker exited with code {worker.returncode}; see {log}")
                if time.monotonic() > deadline:
                    raise ZhijianError(f"the worker did not commit every record in {args.timeout:g} s; see {log}")
                time.sleep(2)
            time.sleep(1)
            m = {}
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
            for line in text.decode().splitlines():
                if line.startswith(("zhijian_events_read_total", "zhijian_events_total", "zhijian_events_refused_total",
                                    "zhijian_records_total", "zhijian_rebalances_total")):
                    name, value = line.rsplit(" ", 1)
                    m[name] = float(value)
            alive = worker.poll() is None
            totals = scrape(port)
        finally:
            stop_process(worker)
    crashes = [line for line in log.read_text(errors="replace").splitlines()
               if "crashed" in line.lower() or "Traceback" in line]
    result: dict[str, Any] = {"records_per_stream": args.records, "seed": args.seed, "streams": {},
                              "worker_alive": alive, "agent_crashes": len(crashes),
                              "rebalances": totals.get("zhijian_rebalances_total", 0.0),
                              "wall_seconds": round(time.monotonic() - started, 1)}
    ok = alive and not crashes
    print(f"\n{'stream':14}{'records':>10}{'events read':>13}{'judged':>10}{'refused':>10}{'gap':>6}")
    for stream in settings.input_topics():
        read = m.get(f'zhijian_events_read_total{{stream="{stream}"}}', 0.0)
        judged = m.get(f'zhijian_events_total{{stream="{stream}"}}', 0.0)
        refused = m.get(f'zhijian_events_refused_total{{stream="{stream}"}}', 0.0)
        records = m.get(f'zhijian_records_total{{stream="{stream}"}}', 0.0)
        gap = read - judged - refused
        ok = ok and gap == 0 and records == sent[stream]
        result["streams"][stream] = {"records": records, "events_read": read, "judged": judged, "refused": refused,
                                     "gap": gap}
        print(f"{stream:14}{records:>10,.0f}{read:>13,.0f}{judged:>10,.0f}{refused:>10,.0f}{gap:>6,.0f}")
    print(f"\nworker alive: {alive}; agent crashes in its log: {len(crashes)}; {result['wall_seconds']:.0f} s"
          + ("" if ok else f" — FAILED, see {log}"))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if ok else 1
