"""Dashboards and Prometheus rules as code, checked without a broker: the committed dashboards are
what the generator writes; every panel has a title, a description and a unit; rates use
$__rate_interval; the rules pass `promtool check` and their unit tests (the compose file: tests/test_deploy.py)."""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "deploy" / "grafana"
PROM = ROOT / "deploy" / "prometheus"


def generator():
    spec = importlib.util.spec_from_file_location("zhijian_dashboards", GRAFANA / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, expr) of every panel query."""
    return [(d["uid"], p["title"], t["expr"]) for d in dashboards().values() for p in d["panels"] for t in p["targets"]]


def rules() -> list[dict]:
    doc = yaml.safe_load((PROM / "rules" / "zhijian.rules.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


ALERT_FORM = re.compile(r"^(?P<signal>.+?)\s*(?:==|!=|>=|<=|>|<)\s*[-+0-9.e]+\s*$", re.S)


def alert_signal(rule: dict) -> str:
    """An alerting rule is `<signal> <comparison> <number>`: the signal must return data on a live worker."""
    m = ALERT_FORM.match(rule["expr"].strip())
    assert m, f"{rule['alert']}: write the expression as <signal> <comparison> <number>"
    return m.group("signal")


def test_committed_dashboards_are_what_the_generator_writes():
    rendered = generator().render()
    assert set(rendered) == {p.name for p in (GRAFANA / "dashboards").glob("*.json")}
    for name, text in rendered.items():
        assert (GRAFANA / "dashboards" / name).read_text() == text, f"{name} is stale: run python deploy/grafana/generate.py"


def test_every_panel_has_title_description_unit_and_the_provisioned_datasource():
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    uid = ds["datasources"][0]["uid"]
    uids = [d["uid"] for d in dashboards().values()]
    assert len(uids) == 5 == len(set(uids))
    for d in dashboards().values():
        assert d["title"] and d["description"]
        for p in d["panels"]:
            assert p["title"] and p.get("description"), (d["uid"], p)
            assert p["fieldConfig"]["defaults"].get("unit"), (d["uid"], p["title"])
            assert p["datasource"]["uid"] == uid and all(t["datasource"]["uid"] == uid for t in p["targets"])


def test_rates_use_rate_interval():
    for uid, title, expr in panel_queries():
        for window in re.findall(r"\b(?:rate|irate|deriv)\([^\[]*\[([^\]]+)\]", expr):
            assert window == "$__rate_interval", (uid, title, expr)


def test_no_panel_or_rule_groups_by_a_personal_or_institution_label():
    exprs = [e for _, _, e in panel_queries()] + [r["expr"] for r in rules()]
    for expr in exprs:
        assert not re.search(r"institution|prescriber|patient|doctor|device_id|pharmacy", expr), expr


@pytest.fixture(scope="module")
def promtool():
    exe = shutil.which("promtool")
    assert exe, "promtool is not installed: `make setup` installs the Debian package prometheus"
    return exe


def test_rules_check_and_unit_tests_pass(promtool):
    r = subprocess.run([promtool, "check", "rules", str(PROM / "rules" / "zhijian.rules.yml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([promtool, "test", "rules", "zhijian.rules.test.yml"], cwd=PROM / "rules",
                       capture_output=True, text=True)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    tested = set(re.findall(r"alertname: (\w+)", (PROM / "rules" / "zhijian.rules.test.yml").read_text()))
    assert tested == {r["alert"] for r in rules() if "alert" in r}
    for rule in rules():
        if "alert" in rule:
            alert_signal(rule)
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            assert rule["alert"] in (ROOT / "docs" / "observability.md").read_text()


def test_prometheus_config_checks(promtool):
    r = subprocess.run([promtool, "check", "config", str(PROM / "prometheus.yml")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr

