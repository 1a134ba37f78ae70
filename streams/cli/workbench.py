"""The workbench's commands: ``console`` (the web workbench), ``console-user`` (add a user) and ``risk`` (the
institution risk scorer). Each imports its part of :mod:`streams.workbench` when it runs, so the worker's process
carries none of the web application."""
from __future__ import annotations

import argparse
import getpass
import logging
import os
import tomllib
from pathlib import Path
from typing import Any

from connectors.errors import ZhijianError
from connectors.kafka.broker import wait_until_answers
from streams.cli.common import STATE_DIR, kafka_args, settings_of


def register(sub: Any) -> None:
    co = sub.add_parser("console", help="the workbench: cases from the alert topic, triaged in a browser")
    kafka_args(co)
    co.add_argument("--host", default="127.0.0.1")
    co.add_argument("--port", type=int, default=8480)
    co.add_argument("--db", default=str(STATE_DIR / "console.db"), help="SQLite store of users and case events")
    co.add_argument("--timezone", default="Asia/Shanghai", metavar="ZONE",
                    help="the region's time zone: the pages show times in it, UTC on hover (default Asia/Shanghai)")
    co.add_argument("--grids", metavar="TOML", help="region → grid 网格 table ([grids] \"310101\" = \"Huangpu\"): cases "
                                                    "go to the grid of their region")
    co.set_defaults(func=cmd_console)

    cu = sub.add_parser("console-user", help="add or replace a workbench user (password from "
                                             "$ZHIJIAN_CONSOLE_PASSWORD or a prompt)")
    cu.add_argument("name")
    cu.add_argument("--role", required=True, choices=("analyst", "operator", "supervisor"))
    cu.add_argument("--db", default=str(STATE_DIR / "console.db"))
    cu.set_defaults(func=cmd_console_user)

    rs = sub.add_parser("risk", help="the institution risk score: follow the claims and alerts, publish every "
                                     "institution's score and grade each day to zhijian.institution-scores")
    kafka_args(rs)
    rs.add_argument("--metrics-port", type=int, default=9465, help="Prometheus endpoint (0: none; default 9465)")
    rs.add_argument("--idle-close", type=float, default=60.0, metavar="SECONDS",
                    help="publish the newest, incomplete day after this long without new claims (default 60)")
    rs.add_argument("--no-follow-worker", action="store_true",
                    help="read the claims to their end instead of up to the worker's committed offsets")
    rs.set_defaults(func=cmd_risk)

    ve = sub.add_parser("verdicts", help="audit findings 稽查结论 on institutions, what the learned risk score learns from")
    vsub = ve.add_subparsers(dest="verdicts_command", required=True)
    vi = vsub.add_parser("import", help="publish a CSV of past inspections (header institution_id,verdict,decided_on; "
                                        "verdict fraud, violation or clean) to zhijian.institution-verdicts")
    vi.add_argument("file", help="the CSV file")
    kafka_args(vi)
    vi.set_defaults(func=cmd_verdicts_import)


def cmd_console(args: argparse.Namespace) -> int:
    import asyncio

    from streams.workbench.store import Store, StoreError
    from streams.workbench.web import serve, set_timezone

    try:
        set_timezone(args.timezone)
    except ValueError as e:
        raise ZhijianError(f"--timezone: {e}") from None
    settings = settings_of(args)
    try:
        store = Store(args.db)
    except StoreError as e:
        raise ZhijianError(f"--db: {e}") from None
    if store.users() == 0:
        raise ZhijianError(f"no user in {args.db}: add one with `zhijian console-user NAME --role analyst`")
    grids = _grids(args.grids) if args.grids else {}
    from models.contracts.pseudonym import MissingKey, Pseudonymizer

    try:  # with the region's key a supervisor can look a patient up by raw identifier; without it, not
        pseudonymize = Pseudonymizer.from_env().once
    except MissingKey:
        pseudonymize = None
    except ValueError as e:
        raise ZhijianError(f"ZHIJIAN_PSEUDONYM_KEY: {e}") from None
    wait_until_answers(settings.kafka, timeout=30)
    from connectors.kafka.broker import ensure_topics

    ensure_topics(settings.kafka, [t for t in settings.topic_specs() if t.name == settings.topic("institution-verdicts")])
    asyncio.run(serve(settings.kafka, settings.topic("alerts"), settings.topic("case-events"), store, args.host,
                      args.port, settings.topic("institution-scores"), grids, settings.topic("watchlist"),
                      settings.topic("institution-verdicts"), pseudonymize, settings.topic("reports")))
    return 0


def _grids(path: str) -> dict[str, str]:
    try:
        grids = tomllib.loads(Path(path).read_text()).get("grids", {})
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ZhijianError(f"--grids {path}: {e}; give a TOML file with a [grids] table, region = grid") from None
    if not isinstance(grids, dict) or not all(isinstance(v, str) for v in grids.values()):
        raise ZhijianError(f"--grids {path}: the [grids] table maps a region code to a grid name")
    return grids


def cmd_console_user(args: argparse.Namespace) -> int:
    from streams.workbench.store import Store, StoreError, _redacted, is_url

    password = os.environ.get("ZHIJIAN_CONSOLE_PASSWORD") or getpass.getpass(f"password for {args.name}: ")
    try:
        Store(args.db).add_user(args.name, args.role, password)
    except StoreError as e:
        raise ZhijianError(f"{e}") from None
    print(f"user {args.name} ({args.role}) saved in {_redacted(args.db) if is_url(args.db) else args.db}")
    return 0


def cmd_risk(args: argparse.Namespace) -> int:
    from models.contracts.pseudonym import Pseudonymizer
    from streams.workbench.risk.score import RiskSettings
    from streams.workbench.risk.scorer import run

    settings = settings_of(args)
    risk = settings.section("risk", RiskSettings)
    wait_until_answers(settings.kafka, timeout=30)
    from connectors.kafka.broker import ensure_topics

    ensure_topics(settings.kafka, [t for t in settings.topic_specs() if t.name == settings.topic("institution-verdicts")])
    # the command line set WARNING before any command ran (a second basicConfig does nothing): what it publishes
    # goes to its log
    logging.getLogger().setLevel(logging.INFO)
    run(settings.kafka, settings.topic("claims"), settings.topic("alerts"), settings.topic("institution-scores"),
        settings.worker.app_id, risk, Pseudonymizer.from_env(), metrics_port=args.metrics_port,
        idle_close_s=args.idle_close, follow_worker=not args.no_follow_worker,
        verdicts_topic=settings.topic("institution-verdicts"), metrics_host=settings.worker.metrics_host)
    return 0


def cmd_verdicts_import(args: argparse.Namespace) -> int:
    from connectors.kafka.broker import ensure_topics
    from connectors.kafka.producer import EnvelopeProducer
    from streams.workbench.risk.verdicts import VerdictError, parse_csv

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise ZhijianError(f"cannot read {path} ({e.strerror}); pass a CSV file with the header "
                           "institution_id,verdict,decided_on") from None
    try:
        records = parse_csv(text, path.name)
    except VerdictError as e:
        raise ZhijianError(f"{e}; nothing was published") from None
    settings = settings_of(args)
    wait_until_answers(settings.kafka, timeout=15)
    ensure_topics(settings.kafka, [t for t in settings.topic_specs() if t.name == settings.topic("institution-verdicts")])
    producer = EnvelopeProducer(settings.kafka, settings.input_topics(), settings.topics.input_partitions)
    try:
        producer.send_keyed(settings.topic("institution-verdicts"), ((r["institution_id"], r) for r in records))
    finally:
        producer.close()
    positives = sum(r["verdict"] != "clean" for r in records)
    print(f"{len(records)} verdicts ({positives} fraud or violation, {len(records) - positives} clean) published to "
          f"{settings.topic('institution-verdicts')}")
    return 0
