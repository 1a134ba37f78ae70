"""A real Prometheus (Debian's) scrapes a real worker on the embedded broker while simulated traffic
flows: every dashboard panel's query, every recording rule and every alerting rule's signal parses
and returns data through Prometheus's HTTP API, and `promtool check metrics` passes on the live
exposition."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from connectors.kafka.broker import free_port
from streams.lab.simulator import RegionSimulator, SimulationConfig
from streams.settings import load_settings
from tests.kafka_helpers import Worker, produce, produce_simulation
from tests.test_observability import PROM, alert_signal, panel_queries, rules

#: What Grafana would put in: a window over several 1 s scrapes, the whole run for $__range.
GRAFANA_VARIABLES = {"$__rate_interval": "20s", "$__range": "10m"}


def query(port: int, expr: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        return json.loads(urllib.request.urlopen(url, timeout=10).read())
    except urllib.error.HTTPError as e:  # 400 on a parse error: show Prometheus's reason
        return json.loads(e.read())


@pytest.fixture(scope="module")
def scraped(broker, tmp_path_factory):
    """A worker of its own group, simulated traffic through it, and Prometheus scraping it every second."""
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is not installed: `make setup` installs the Debian package"
    tmp = tmp_path_factory.mktemp("prometheus")
    bs = broker.bootstrap_servers
    worker = Worker(bs, free_port(), tmp / "worker.log", env={"ZHIJIAN_APP_ID": "zhijian-prometheus-test"})
    worker.start()
    region = str(Path(__file__).resolve().parent.parent / "streams" / "lab" / "simulator" / "region.toml")
    s = load_settings([region], overrides={"kafka": {"bootstrap_servers": bs}}, environ={})
    sim = RegionSimulator(SimulationConfig(seed=21, days=3, scale=0.5, scenario_rate=6, warmup_days=0.2))
    n = produce_simulation(s, sim, sim.t0 + 3 * 86400, max_batch=200)
    # and some garbage, as real senders send it
    produce(bs, "zhijian.telemetry", [b"not json", {"schema_version": 1, "device_id": "PROM-BAD"}], key="PROM-BAD")

    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROM / "rules" / "zhijian.rules.yml")]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "zhijian-worker")
    config["scrape_configs"] = [job]  # the worker this test runs (the risk scorer's job is not started here)
    job.pop("dns_sd_configs")
    job["static_configs"] = [{"targets": [f"127.0.0.1:{worker.port}"]}]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen([prometheus, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=open(tmp / "prometheus.log", "wb"),
                            stderr=subprocess.STDOUT)
    try:
        worker.wait_metric("zhijian_events_total", n, timeout=300)
        worker.wait_metric("zhijian_invalid_records_total", 2, timeout=60)
        time.sleep(8)  # several scrapes, a lag report (every 5 s) and rule evaluations after the traffic
        yield port, worker
    finally:
        proc.terminate()
        proc.wait(30)
        worker.proc.terminate()
        worker.proc.wait(30)


def test_every_panel_query_returns_data(scraped):
    port, _ = scraped
    empty = []
    for uid, title, expr in panel_queries():
        for var, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(var, value)
        r = query(port, expr)
        assert r["status"] == "success", (uid, title, expr, r)
        if not r["data"]["result"]:
            empty.append(f"{uid} / {title}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_every_rule_parses_and_its_signal_returns_data(scraped):
    port, _ = scraped
    empty = []
    for rule in rules():
        r = query(port, rule["expr"])
        assert r["status"] == "success", (rule, r)
        signal = rule["expr"] if "record" in rule else alert_signal(rule)
        if not query(port, signal)["data"]["result"]:
            empty.append(f"{rule.get('record') or rule.get('alert')}: {signal}")
    assert not empty, "rules whose signal has no data:\n" + "\n".join(empty)
    # the recording rules ran on the scraped data
    assert query(port, "zhijian:events:rate5m")["data"]["result"]


def test_promtool_check_metrics_passes_on_the_live_exposition(scraped):
    _, worker = scraped
    text = worker.metrics()
    assert "zhijian_consumer_lag_records{" in text and "zhijian_open_alerts{" in text
    r = subprocess.run([shutil.which("promtool"), "check", "metrics"], input=text, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
