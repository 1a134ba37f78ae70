"""Running the worker as a process, as the lab tools and the demo do, and the simulated region they feed it."""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from connectors.errors import ZhijianError
from models.contracts.pseudonym import KEY_ENV, Pseudonymizer
from streams.lab.simulator import REGION_CONFIG, RegionSimulator, SimulationConfig
from streams.lab.simulator.region import registry_toml


def ensure_run_key(keep: Path | None = None) -> str:
    """A pseudonymization key for a lab run when none is set: random, in this process's environment (the
    workers it starts inherit it), kept in ``keep`` (mode 0600) when given so that later runs reuse it.
    Returns the line to tell the user."""

    if os.environ.get(KEY_ENV):
        return f"pseudonymization key from {KEY_ENV} (key id {Pseudonymizer.from_env().key_id})"
    if keep is not None and keep.exists():
        os.environ[KEY_ENV] = keep.read_text().strip()
        where = f"kept in {keep}"
    else:
        os.environ[KEY_ENV] = Pseudonymizer.random_key()
        where = "random, for this run only"
        if keep is not None:
            keep.parent.mkdir(parents=True, exist_ok=True)
            keep.touch(mode=0o600)
            keep.write_text(os.environ[KEY_ENV])
            where = f"random, kept in {keep}"
    return f"pseudonymization key: {where} (key id {Pseudonymizer.from_env().key_id}); set {KEY_ENV} for real data"


def start_worker_process(bootstrap: str, metrics_port: int, log_path: Path, config: list[str] | None = None,
                         extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "streams.cli", "worker", "--bootstrap-servers", bootstrap,
           "--metrics-port", str(metrics_port), "--no-create-topics"]
    for path in config or []:
        cmd += ["--config", path]
    env = {**os.environ, **(extra_env or {})}
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


_ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception|Fenced|Failed|Exit)\w*(:|$)")


def last_error(log_path: Path) -> str:
    """The last exception line of a process's log (what a crash names), or "" — for the one line a lab tool
    prints when a worker it runs dies."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines[-400:]):
        if _ERROR_LINE.match(line.strip()):
            return line.strip()[:300]
    return ""


_NUMBERS = re.compile(r"\d+(?:\.\d+)?")


def log_digest(log_paths: list[Path], limit: int = 12) -> list[str]:
    """The WARNING and ERROR lines of processes' logs, counted by kind (numbers, ports and offsets folded, the
    first 110 characters of the message kept), most frequent first: what a lab tool prints when a run's result is
    wrong, so that the CI log alone says what the workers went through (their log files go with the machine).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "w.log").write_text("[2026-12-07 18:41:55,059] [16987] [ERROR] Unable connect to node with id 1\\n"
    ...                              "[2026-12-07 18:41:56,001] [16987] [ERROR] Unable connect to node with id 2\\n"
    ...                              "[2026-12-07 18:41:57,001] [16987] [INFO] fine\\n")
    >>> log_digest([d / "w.log"])
    ['      2 × [ERROR] Unable connect to node with id #']
    """
    kinds: dict[str, int] = {}
    for path in log_paths:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            for level in ("[WARNING]", "[ERROR]"):
                at = line.find(level)
                if at >= 0:
                    kind = level + " " + _NUMBERS.sub("#", line[at + len(level):].strip())[:110]
                    kinds[kind] = kinds.get(kind, 0) + 1
                    break
    ranked = sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [f"{n:7d} × {kind}" for kind, n in ranked]


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stop_processes(procs: list[subprocess.Popen[bytes] | None], timeout: float = 20.0) -> None:
    """SIGTERM every process at once, then wait for them together (SIGKILL what is left after ``timeout``): a
    demo's worker, console and risk scorer stop side by side, not one after another."""
    alive = [p for p in procs if p is not None and p.poll() is None]
    for p in alive:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in alive:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def simulated_region_configs(user: list[str] | None, region: Any = None, state_dir: Path = Path(".zhijian")
                             ) -> list[str]:
    """The simulated region's dictionaries (prices, packages, licences), its institution registry (beds and kinds:
    they vary with the seed, so ``region``'s is written to ``state_dir``), then the user's files."""
    configs = [str(REGION_CONFIG)]
    if region is not None:
        text = registry_toml(region)
        path = state_dir / f"registry-{zlib.crc32(text.encode()):08x}.toml"
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        configs.append(str(path))
    return [*configs, *(user or [])]


def simulator_from_args(args: argparse.Namespace):
    """The region simulator that --seed, --days, --scale, --scenario, --no-scenarios and --look-alikes describe."""

    try:
        return RegionSimulator(SimulationConfig(seed=args.seed, days=args.days, scale=args.scale,
                                                scenarios=None if args.scenarios is None else tuple(args.scenarios),
                                                look_alikes=getattr(args, "look_alikes", False)))
    except ValueError as e:
        raise ZhijianError(str(e)) from None


def peak_rss_mib(pid: int) -> float:
    """A process's peak resident memory (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")

