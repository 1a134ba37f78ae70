"""The ``zhijian`` command line: one parser built from the commands of each wing.

* :mod:`streams.cli.demo` — the main job: broker, worker, simulated traffic, workbench, risk scorer;
* :mod:`streams.cli.engine` — ``worker``, ``topics``, ``broker``;
* :mod:`streams.cli.connectors` — ``replay``, ``import fridge-tag``;
* :mod:`streams.cli.workbench` — ``console``, ``console-user``, ``risk``;
* :mod:`streams.cli.lab` — ``evaluate``, ``simulate``, ``bench``, ``fuzz``, ``nab``, ``rank``, ``triage``,
  ``console-bench``.

Each module registers its subcommands (``register``) and maps their flags onto a call into its wing, which it
imports only when the command runs: ``zhijian worker`` loads none of the workbench or the lab.
"""
from __future__ import annotations

import argparse
import gc
import logging
import sys

from connectors.errors import ZhijianError
from models.engine.runtime import GC_THRESHOLDS
from streams.cli import connectors, demo, engine, lab, workbench

WINGS = (demo, engine, connectors, workbench, lab)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zhijian", description="智监 streaming risk monitoring for healthcare supervision")
    sub = p.add_subparsers(dest="command", required=True)
    for wing in WINGS:
        wing.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    gc.set_threshold(*GC_THRESHOLDS)  # every command keeps long-lived state (runtimes, simulated regions, alerts)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # kafka-python's retry chatter; errors surface as ours
    try:
        return args.func(args) or 0
    except ZhijianError as e:
        print(f"zhijian: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
