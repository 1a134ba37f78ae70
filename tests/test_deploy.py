"""The compose file runs the whole system, checked without a Docker engine: `docker-compose config` accepts it
(and names the missing secret when one is unset), every zhijian service's command is one `zhijian` accepts,
the three brokers form one quorum that replicates as the workers expect, the simulator replays the reference
tables the simulator writes before the streams, and Prometheus scrapes services that exist."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streams.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
SECRETS = {"ZHIJIAN_PSEUDONYM_KEY": "k" * 32, "ZHIJIAN_DB_PASSWORD": "db-secret", "ZHIJIAN_CONSOLE_PASSWORD": "pw"}


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is not installed: `make setup` installs the Debian package"
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run([exe, "-f", str(COMPOSE), "--profile", "simulator", "config"], capture_output=True,
                          text=True, cwd=ROOT, env={**clean, **env})


@pytest.fixture(scope="module")
def config() -> dict:
    r = compose_config(SECRETS)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def zhijian_services(config: dict) -> dict[str, dict]:
    return {name: s for name, s in config["services"].items() if s.get("image") == "zhijian:latest"}


def test_every_part_of_zhijian_is_a_service(config):
    services = set(config["services"])
    assert {"kafka-1", "kafka-2", "kafka-3", "topics", "worker", "risk", "postgres", "console-admin", "console",
            "prometheus", "grafana", "simulator"} <= services
    assert config["services"]["simulator"]["profiles"] == ["simulator"]
    assert config["services"]["console"]["ports"][0]["target"] == 8480


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_a_missing_secret_is_named(secret):
    r = compose_config({k: v for k, v in SECRETS.items() if k != secret})
    assert r.returncode != 0 and secret in r.stderr, r.stderr


def test_every_zhijian_command_parses(config):
    parser = build_parser()
    commands = {}
    for name, s in zhijian_services(config).items():
        if s.get("entrypoint") == ["sh", "-c"]:
            lines = [shlex.split(part) for part in s["command"][0].split("&&")]
        else:
            lines = [s["command"]]
        for argv in lines:
            argv = argv[1:] if argv[0] == "zhijian" else argv
            args = parser.parse_args(argv)  # SystemExit on a flag zhijian does not know
            commands.setdefault(name, []).append(args)
    assert {"topics", "worker", "risk", "console", "console-admin", "simulator"} <= set(commands)
    assert commands["console"][0].host == "0.0.0.0"
    db = f"postgresql://zhijian:{SECRETS['ZHIJIAN_DB_PASSWORD']}@postgres:5432/zhijian"
    assert commands["console"][0].db == commands["console-admin"][0].db == db
    assert commands["console-admin"][0].role == "supervisor"
    pg = config["services"]["postgres"]["environment"]
    assert pg["POSTGRES_PASSWORD"] == SECRETS["ZHIJIAN_DB_PASSWORD"] and pg["POSTGRES_USER"] == "zhijian"


def test_the_brokers_form_one_quorum_that_replicates_three_times(config):
    brokers = {n: s["environment"] for n, s in config["services"].items() if n.startswith("kafka-")}
    assert len(brokers) == 3
    voters = {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in brokers.values()}
    assert len(voters) == 1
    quorum = dict(v.split("@") for v in voters.pop().split(","))
    for name, env in brokers.items():
        assert quorum[str(env["KAFKA_NODE_ID"])] == f"{name}:9093"
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert str(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == "3" and str(env["KAFKA_MIN_INSYNC_REPLICAS"]) == "2"
        assert str(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == "3"
        assert str(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]) == "2"
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
    assert len({env["CLUSTER_ID"] for env in brokers.values()}) == 1
    for name, s in zhijian_services(config).items():
        env = s["environment"]
        assert sorted(env["ZHIJIAN_BOOTSTRAP_SERVERS"].split(",")) == sorted(f"{b}:9092" for b in brokers), name
        assert env["ZHIJIAN_REPLICATION_FACTOR"] == "3", name


def test_the_simulator_replays_the_reference_tables_it_writes_first(config, tmp_path):
    script = config["services"]["simulator"]["command"][0]
    simulate, replay = (shlex.split(part) for part in script.split("&&"))
    out = Path(simulate[simulate.index("--out") + 1])
    files = [a.split("=", 1) for a in replay if "=" in a and not a.startswith("-")]
    assert [t for t, _ in files[:2]] == ["beneficiary", "inventory"], files
    assert all(Path(p).parent == out for _, p in files)
    r = subprocess.run(["zhijian" if shutil.which("zhijian") else str(ROOT / ".venv/bin/zhijian"), "simulate",
                        "--days", "1", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    written = {p.stem for p in tmp_path.glob("*.jsonl")} - {"truth"}
    assert {t for t, _ in files} == written and all((tmp_path / Path(p).name).stat().st_size > 0 for _, p in files)


def test_prometheus_scrapes_services_that_exist(config):
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {c["job_name"]: (c["dns_sd_configs"][0]["names"][0], c["dns_sd_configs"][0]["port"])
               for c in prom["scrape_configs"]}
    assert targets == {"zhijian-worker": ("worker", 9464), "zhijian-risk": ("risk", 9465)}
    risk = zhijian_services(config)["risk"]["command"]
    assert risk[risk.index("--metrics-port") + 1] == "9465"
    assert re.fullmatch(r"0\.0\.0\.0", zhijian_services(config)["worker"]["environment"]["ZHIJIAN_METRICS_HOST"])
