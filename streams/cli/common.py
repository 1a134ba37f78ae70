"""What every command shares: the state folder, the Kafka flags, the settings they load."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from streams.settings import Settings, load_settings

#: The folder the demo and the lab keep their logs, keys and the demo broker's data in.
STATE_DIR = Path(".zhijian")


def kafka_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", action="append", help="TOML config file, repeatable: later files override earlier "
                                                     "ones (default: $ZHIJIAN_CONFIG)")
    p.add_argument("--bootstrap-servers", help="Kafka bootstrap servers host:port[,...] (default 127.0.0.1:9092)")


def settings_of(args: argparse.Namespace, **worker: Any) -> Settings:
    """The settings from ``--config`` files, the environment and ``--bootstrap-servers``; ``worker``: [worker]
    values given by flags."""
    return load_settings(args.config, overrides={
        "kafka": {"bootstrap_servers": getattr(args, "bootstrap_servers", None)},
        "worker": worker,
    })


def scenario_args(p: argparse.ArgumentParser) -> None:
    """The simulated region's flags (evaluate, simulate)."""
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--days", type=float, default=30.0, help="simulated days")
    p.add_argument("--scale", type=float, default=1.0, help="× the default region (24 institutions)")
    p.add_argument("--scenario", dest="scenarios", action="append", metavar="NAME",
                   help="only this scenario (repeatable); --no-scenarios for clean traffic")
    p.add_argument("--no-scenarios", dest="scenarios", action="store_const", const=[], help="clean traffic only")
