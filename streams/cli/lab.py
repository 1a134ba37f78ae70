"""The lab's commands: ``evaluate`` (detection and the kill and scale harness through the real worker),
``simulate`` (the region's events to files), ``bench`` (throughput beside the raw consumer), ``fuzz``, ``nab``,
``rank`` (the risk score against naive rankings), ``triage`` (the learned queue order) and ``console-bench``.

Each hands its flags to its module in :mod:`streams.lab`, imported when the command runs: the lab is never
loaded by the worker's process (``tests/test_house.py``)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from connectors.errors import ZhijianError
from streams.cli.common import scenario_args


def register(sub: Any) -> None:  # long: one flat list of the lab's commands and their flags, read top to bottom
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
    ev.add_argument("--brokers", type=int, default=1,
                    help="run on a local cluster of this many Apache Kafka brokers (replication factor 3, "
                         "min.insync.replicas 2) instead of one; the reference run stays on one broker")
    ev.add_argument("--broker-faults", action="store_true",
                    help="with --brokers 3: SIGKILL the active controller at 30 %% of the days and the leader of "
                         "the claims topic's partition 0 at 60 %%, each restarted --broker-down seconds later; "
                         "alerts and dead letters are compared with the undisturbed reference")
    ev.add_argument("--broker-down", type=float, default=15.0, metavar="SECONDS",
                    help="how long a killed broker stays down (default 15)")
    ev.add_argument("--look-alikes", action="store_true",
                    help="plant the benign look-alikes too (合理情形: a chronic patient's month of supply, a pharmacy at "
                         "a hospital's gate, a transfer…): an alert on one is a false alarm, reported per look-alike")
    ev.add_argument("--reference", metavar="JSON", help="the --json of an earlier one-worker run to compare with "
                                                        "(instead of running it first)")
    ev.set_defaults(func=cmd_evaluate)

    si = sub.add_parser("simulate", help="write the simulated region's events (one JSON-lines file per stream) "
                                         "and its ground truth to a directory")
    scenario_args(si)
    si.add_argument("--out", required=True, help="directory to write into")
    si.set_defaults(func=cmd_simulate)

    be = sub.add_parser("bench", help="throughput and latency of the worker beside a raw aiokafka consumer")
    be.add_argument("--events", type=int, default=200_000)
    be.add_argument("--workers", type=int, default=1, help="worker processes sharing the work")
    be.add_argument("--batch", type=int, default=500, help="events per envelope (1 = one event per record)")
    be.add_argument("--latency-rate", type=float, default=2000, help="events/s of the paced latency phase")
    be.add_argument("--latency-seconds", type=float, default=10)
    be.add_argument("--latency-batch", type=int, default=20, help="events per envelope in the latency phase")
    be.add_argument("--json", help="write the figures to this file")
    be.add_argument("--against", metavar="JSON", help="the --json of a one-worker run: print the speed-up of this "
                                                       "run's workers over it (ratios to each run's raw reference)")
    be.add_argument("--entities", type=int, metavar="N",
                    help="instead: in process, N distinct entities per stream through the detectors — state memory "
                         "per entity and its expiry by event time")
    be.set_defaults(func=cmd_bench)

    fz = sub.add_parser("fuzz", help="garbage and near-valid records through the real worker: every event judged or "
                                     "refused, no agent crash")
    fz.add_argument("--records", type=int, default=100_000, help="records per stream")
    fz.add_argument("--seed", type=int, default=1)
    fz.add_argument("--timeout", type=float, default=1800)
    fz.add_argument("--json", help="write the figures to this file")
    fz.set_defaults(func=cmd_fuzz)

    n = sub.add_parser("nab", help="NAB-style scores of the temperature-dynamics detector on NAB's real series")
    n.add_argument("--data", help="the NAB folder with data/ and labels/ (default: ../shared/data/nab)")
    n.add_argument("--json", help="write the scores to this file")
    n.set_defaults(func=cmd_nab)

    rk = sub.add_parser("rank", help="rank the simulated institutions by the risk score and by naive rankings "
                                     "(volume, alert counts): ROC-AUC and precision@k per seed, in process")
    rk.add_argument("--seeds", type=int, nargs="+", default=[7], help="simulator seeds (default 7)")
    rk.add_argument("--days", type=float, default=30.0, help="simulated days (default 30)")
    rk.add_argument("--scale", type=float, default=1.0, help="× the default region (default 1)")
    rk.add_argument("--labelled", type=float, default=0.3, metavar="SHARE",
                    help="also train the learned score on audit findings for this random share of the institutions "
                         "and judge every ranking on the rest (default 0.3; 0: no)")
    rk.add_argument("--json", help="write the full results to this file")
    rk.set_defaults(func=cmd_rank)

    tr = sub.add_parser("triage", help="precision of the workbench queue's top 20 before and after 50 and 200 "
                                       "verdicts of a simulated analyst, learned order against the rules' own")
    tr.add_argument("--seeds", type=int, nargs="+", default=[7])
    tr.add_argument("--days", type=float, default=30.0)
    tr.add_argument("--scale", type=float, default=1.0)
    tr.add_argument("--scenario-rate", type=float, default=3.0, help="× each scenario's and look-alike's instances "
                                                                     "(enough cases for 200 verdicts)")
    tr.set_defaults(func=cmd_triage)

    _register_benches(sub)


def _register_benches(sub: Any) -> None:
    gb = sub.add_parser("group-bench", help="the 结伴就医 rule at a province's scale: claims per second beside a "
                                            "do-nothing reference, state and memory, how far its pair table reaches")
    gb.add_argument("--beneficiaries", type=int, default=1_000_000)
    gb.add_argument("--days", type=int, default=30)
    gb.add_argument("--max-pairs", type=int, default=2000, help="the rule's pair table per doctor")
    gb.add_argument("--seed", type=int, default=1)
    gb.add_argument("--json", help="write the figures to this file")
    gb.set_defaults(func=cmd_group_bench)

    cb = sub.add_parser("console-bench", help="cases built per second and page times with many cases in the "
                                              "workbench, beside references measured in the same run")
    cb.add_argument("--cases", type=int, default=100_000)
    cb.add_argument("--requests", type=int, default=30, help="requests per page")
    cb.add_argument("--seed", type=int, default=1)
    cb.add_argument("--json", help="write the figures to this file")
    cb.set_defaults(func=cmd_console_bench)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from streams.lab.evaluate import run_evaluate

    return run_evaluate(args)


def cmd_simulate(args: argparse.Namespace) -> int:
    from streams.lab.processes import simulator_from_args
    from streams.lab.simulator.files import write_simulation

    sim = simulator_from_args(args)
    counts = write_simulation(sim, Path(args.out), args.days)
    print(f"wrote {sum(counts.values()):,} events ({', '.join(f'{k} {v:,}' for k, v in sorted(counts.items()))}) "
          f"and {len(sim.truth)} ground-truth incidents to {args.out}/; replay with: zhijian replay "
          + " ".join(f"{s}={args.out}/{s}.jsonl" for s in sorted(counts)))
    return 0


def cmd_group_bench(args: argparse.Namespace) -> int:
    if args.beneficiaries < 1000 or args.days < 1 or args.max_pairs < 10:
        raise ZhijianError("--beneficiaries must be at least 1000, --days at least 1 and --max-pairs at least 10")
    from streams.lab.group_bench import run_group_bench

    return run_group_bench(args)


def cmd_fuzz(args: argparse.Namespace) -> int:
    from streams.lab.fuzz import run_fuzz

    return run_fuzz(args)


def cmd_nab(args: argparse.Namespace) -> int:
    from streams.lab.nab import run_nab

    return run_nab(args)


def cmd_rank(args: argparse.Namespace) -> int:
    from streams.lab.rank import run_rank

    return run_rank(args)


def cmd_triage(args: argparse.Namespace) -> int:
    from streams.lab.triage import run_triage

    return run_triage(args)


def cmd_console_bench(args: argparse.Namespace) -> int:
    from streams.lab.console_bench import run_console_bench

    return run_console_bench(args)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.entities:
        from streams.lab.entities import run_entities

        rows = run_entities(args.entities)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
        return 0
    from streams.lab.bench import run_bench

    return run_bench(args)
