"""Commands that bring data in from files: ``replay`` (JSON lines and CSV through column mappings, in event-time
order) and ``import fridge-tag`` (Berlinger Fridge-tag and Q-tag exports as telemetry)."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from connectors.errors import ZhijianError
from connectors.files.fridge_tag import FridgeTagError, FridgeTagExport, parse, telemetry_events
from connectors.files.mapping import Mapping
from connectors.files.replay import Progress, Refused, load_sources, replay
from connectors.kafka.broker import wait_until_answers
from connectors.kafka.producer import EnvelopeProducer
from streams.cli.common import kafka_args, settings_of


def register(sub: Any) -> None:
    r = sub.add_parser("replay", help="produce JSON-lines or CSV files to the input topics, in event-time order")
    kafka_args(r)
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

    im = sub.add_parser("import", help="import logger exports (Berlinger Fridge-tag / Q-tag) as telemetry")
    im_sub = im.add_subparsers(dest="format", required=True)
    ft = im_sub.add_parser("fridge-tag", help="Fridge-tag 2 / 2 L / Ultra Low and Q-tag text exports")
    kafka_args(ft)
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


def cmd_replay(args: argparse.Namespace) -> int:
    settings = settings_of(args)
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
    """Berlinger Fridge-tag / Q-tag exports: readings to the telemetry topic (or a file), daily summaries to a file;
    with ``--agreement`` the lab compares zhijian's rule with the loggers' own alarms (:mod:`streams.lab.agreement`,
    imported only then)."""
    tz = _utc_offset(args.tz)
    exports = [(path, _read_export(path)) for path in args.files]
    events, summaries = _print_exports(exports, tz, args)
    if args.agreement:
        from streams.lab.agreement import print_agreement

        print_agreement(exports, tz)
    if args.summaries:
        Path(args.summaries).write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in summaries))
        print(f"{len(summaries)} daily summaries written to {args.summaries}")
    if args.out:
        Path(args.out).write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events))
        print(f"{len(events)} telemetry events written to {args.out}")
        return 0
    settings = settings_of(args)
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
        from streams.lab.agreement import print_worker_agreement, through_worker

        print_worker_agreement(settings, through_worker(settings, exports, tz, timeout=args.timeout))
    return 0


def _utc_offset(text: str) -> timezone:
    try:
        sign = -1 if text.startswith("-") else 1
        hours, _, minutes = text.lstrip("+-").partition(":")
        return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes or 0)))
    except ValueError:
        raise ZhijianError(f"--tz {text!r}: give the loggers' UTC offset as +08:00") from None


def _read_export(path: str) -> FridgeTagExport:
    try:
        return parse(Path(path).read_text(encoding="utf-8", errors="replace"))
    except OSError as e:
        raise ZhijianError(f"{path}: cannot read it ({e.strerror})") from None
    except FridgeTagError as e:
        raise ZhijianError(f"{path}: {e} — not a Fridge-tag or Q-tag export as the logger writes it") from None


def _print_exports(exports: list[tuple[str, FridgeTagExport]], tz: timezone,
                   args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One line per export; its readings as telemetry events and its daily summaries."""
    events: list[dict[str, Any]] = []
    summaries: list[dict[str, Any]] = []
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
    return events, summaries
