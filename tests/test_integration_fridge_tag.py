"""Every Berlinger export in ../shared/data/coldchain/raw through the real worker: `zhijian import fridge-tag
--agreement` sends the readings to the telemetry topic, waits until the worker has judged them, reads the
worker's excursion and breach alerts back and sets them, per day and rule, beside the alarms each logger recorded
itself. The worker runs the Fridge-tag 2 L logger's own rule (2–8 °C, 60 minutes each way), so on that logger
every day must agree; on the others the worker's rule differs from the logger's and the report says how."""
from __future__ import annotations

import subprocess
import sys
from datetime import timedelta, timezone
from pathlib import Path

import pytest

from connectors.kafka.broker import ensure_topics, free_port
from streams.settings import load_settings
from tests.kafka_helpers import Worker

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "coldchain" / "raw"
FILES = sorted(RAW.rglob("*.txt"))
CST = timezone(timedelta(hours=8))
pytestmark = pytest.mark.skipif(not FILES, reason="../shared/data/coldchain is not beside the checkout")

RULE_2L = """[coldchain.excursion]
heat_above_c = 8.0
heat_breach_minutes = 60
freeze_at_or_below_c = 2.0
freeze_breach_minutes = 60
heat_cumulative_minutes = 0
severe_heat_minutes = 0
"""


def test_every_export_through_the_worker_agrees_with_the_logger_whose_rule_it_runs(broker, tmp_path):
    bs = broker.bootstrap_servers
    config = tmp_path / "fridge-tag-2l.toml"
    config.write_text(RULE_2L)
    env = {"ZHIJIAN_TOPIC_PREFIX": "ftag-it.", "ZHIJIAN_APP_ID": "ftag-it-app", "ZHIJIAN_CONFIG": str(config)}
    settings = load_settings(overrides={"kafka": {"bootstrap_servers": bs}}, environ=env)
    ensure_topics(settings.kafka, settings.topic_specs())
    w = Worker(bs, free_port(), tmp_path / "worker.log", env).start()
    try:
        r = subprocess.run([sys.executable, "-m", "streams.cli", "import", "fridge-tag", *map(str, FILES),
                            "--bootstrap-servers", bs, "--config", str(config), "--facility", "CDC-FT",
                            "--agreement", "--timeout", "240"],
                           capture_output=True, text=True, timeout=400, env={**__import__("os").environ, **env})
    finally:
        w.proc.terminate()
        w.proc.wait(30)
    print(r.stdout[-4000:])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    through = r.stdout.split("agreement through the worker", 1)[1]
    rows = {line.split()[0]: line for line in through.splitlines()[2:] if line and not line.startswith(" ")}
    # the 2 L logger: 38 days, every one agreeing — 11 days of low alarms and 19 of high ones, both found
    assert rows["130500109088_202206081014.txt"].split()[1:3] == ["38", "38"]
    assert "11/0/0" in rows["130500109088_202206081014.txt"] and "19/0/0" in rows["130500109088_202206081014.txt"]
    block_2l = through.split("130500109088_202206081014.txt", 1)[1].split("\n", 2)
    assert "not the logger's" not in block_2l[1]
    # the Ultra Low logger alarms at −60 °C: the worker's vaccine-fridge rule is not its rule, and the report says so
    ul = through.split("100800001215_202304201410.txt", 1)[1]
    assert "the worker's rule is not the logger's: heat above -60 (logger) vs 8 (worker)" in ul.split("\n")[1]
    # exports without readings (Fridge-tag 2: daily history only) are listed as having nothing to compare
    assert "130400191542_202302140605.txt" in rows and "nothing to compare per day" in rows["130400191542_202302140605.txt"]
