"""A secured embedded broker (`zhijian broker --security scram-tls`): SASL/SCRAM over TLS with a
generated self-signed certificate, and ACLs that give each principal only its part. Every allowed
and every denied access is tried with real clients: kafka-python, the zhijian worker (aiokafka) and
Debian's kcat (librdkafka), which reports a denied read as such where kafka-python only goes quiet."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, TopicAuthorizationFailedError, TransactionalIdAuthorizationFailedError

from connectors.kafka.broker import ROLES, free_port
from streams.settings import load_settings
from tests.kafka_helpers import Worker

ROOT = Path(__file__).resolve().parent.parent
READING = {"schema_version": 1, "device_id": "SEC-FRIDGE", "device_kind": "fridge", "facility_id": "SEC",
           "event_time": "2026-01-01T00:00:00+00:00", "temperature_c": 14.5}


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """`zhijian broker --security scram-tls` as a user starts it; the connection of each principal."""
    data = tmp_path_factory.mktemp("secure") / "kafka"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "broker", "--security", "scram-tls",
                             "--data-dir", str(data), "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops it" in line:
            break
    assert any("Ctrl-C stops it" in x for x in lines), "".join(lines)
    files = {role: data / "clients" / f"{role}.toml" for role in ROLES}
    for path in files.values():
        assert str(path) in "".join(lines) and oct(path.stat().st_mode & 0o777) == "0o600"
    conns = {role: load_settings([str(p)], environ={}).kafka for role, p in files.items()}
    yield conns, files, data
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    assert not (data / "broker.pid").exists()


def write(conn, topic: str, value: bytes) -> None:
    p = KafkaProducer(**conn.kafka_python(), max_block_ms=15000, enable_idempotence=False, acks=1)
    try:
        p.send(topic, value=value, partition=0).get(15)
    finally:
        p.close()


def read(conn, topic: str, until, timeout: float = 60) -> list:
    """Fetch partition 0 from offset 0 (no offset look-up) until ``until(values)``; raises if denied."""
    c = KafkaConsumer(**conn.kafka_python(), group_id=None, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    values: list = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for records in c.poll(timeout_ms=300).values():
                values += [r.value for r in records]
            if until(values):
                return values
    finally:
        c.close()
    raise AssertionError(f"nothing matching on {topic} after {timeout} s ({len(values)} records)")


def kcat_read(conn, topic: str) -> subprocess.CompletedProcess:
    """Debian's own kcat (librdkafka) reading partition 0 from the start, as ``conn``'s principal."""
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed: `make setup` installs the Debian package"
    return subprocess.run([kcat, "-b", conn.bootstrap_servers, "-X", f"security.protocol={conn.security_protocol}",
                           "-X", f"sasl.mechanisms={conn.sasl_mechanism}", "-X", f"sasl.username={conn.sasl_username}",
                           "-X", f"sasl.password={conn.sasl_password}", "-X", f"ssl.ca.location={conn.ssl_cafile}",
                           "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q"],
                          capture_output=True, timeout=60)


def denied_read(conn, topic: str) -> None:
    r = kcat_read(conn, topic)
    assert r.returncode != 0 and b"authorization failed" in r.stderr.lower(), (conn.sasl_username, topic, r)


def denied_write(conn, topic: str) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        write(conn, topic, b"{}")


def test_each_principal_gets_only_its_part(secured, tmp_path):
    conns, files, data = secured
    ingest, worker, analyst, admin = conns["ingest"], conns["worker"], conns["analyst"], conns["admin"]
    assert ingest.security_protocol == "SASL_SSL" and ingest.sasl_mechanism == "SCRAM-SHA-512"

    # connectors write the input topics: a reading above 8 °C and a record that is not JSON
    write(ingest, "zhijian.telemetry", orjson.dumps(READING))
    write(ingest, "zhijian.telemetry", b"not json at all")

    # the worker, as its own principal, reads them and writes an alert and a dead letter
    w = Worker(worker.bootstrap_servers, free_port(), tmp_path / "worker.log",
               env={"ZHIJIAN_CONFIG": str(files["worker"]), "ZHIJIAN_PSEUDONYM_KEY": "k" * 32})
    w.start()
    try:
        w.wait_metric("zhijian_events_total", 1, timeout=120, stream="telemetry")
        alerts = read(analyst, "zhijian.alerts", lambda v: any(b"SEC-FRIDGE" in x for x in v))
        [alert] = [orjson.loads(x) for x in alerts if b"SEC-FRIDGE" in x]
        assert alert["detector"] == "coldchain.excursion" and alert["numbers"]["peak_c"] == 14.5
        seen_by_kcat = kcat_read(analyst, "zhijian.alerts")
        assert seen_by_kcat.returncode == 0 and b"SEC-FRIDGE" in seen_by_kcat.stdout, seen_by_kcat
        # only the admin reads the dead-letter topic (it keeps raw records)
        dead = read(admin, "zhijian.deadletter", lambda v: b"not json at all" in v)
        assert b"not json at all" in dead
    finally:
        w.proc.terminate()
        w.proc.wait(30)

    # denied: analysts read only alerts; the worker reads no output; connectors read nothing
    denied_read(analyst, "zhijian.deadletter")
    denied_read(analyst, "zhijian.telemetry")
    denied_write(analyst, "zhijian.alerts")
    denied_read(worker, "zhijian.deadletter")
    denied_read(worker, "zhijian.alerts")
    denied_write(worker, "zhijian.telemetry")
    denied_read(ingest, "zhijian.alerts")
    denied_read(ingest, "zhijian.telemetry")
    denied_write(ingest, "zhijian.alerts")
    # no transactional id was granted to anyone but the admin
    p = KafkaProducer(**analyst.kafka_python(), transactional_id="analyst-tx", max_block_ms=15000)
    with pytest.raises(TransactionalIdAuthorizationFailedError):
        p.init_transactions()
    p.close(timeout=1)


def test_wrong_password_and_plaintext_are_refused(secured):
    conns, _, _ = secured
    analyst = conns["analyst"]
    with pytest.raises(KafkaError):
        KafkaConsumer(**replace(analyst, sasl_password="wrong").kafka_python(), group_id=None,
                      api_version_auto_timeout_ms=5000, request_timeout_ms=5000).topics()
    with pytest.raises(KafkaError):
        KafkaConsumer(bootstrap_servers=analyst.bootstrap_servers, group_id=None,
                      api_version_auto_timeout_ms=5000, request_timeout_ms=5000).topics()


def test_the_console_runs_as_the_analyst_and_writes_its_case_events(secured, tmp_path):
    """The workbench with the analyst's config file: it follows the alerts, the institution scores and the watch
    lists, and a case changed in it goes to zhijian.case-events — every topic it touches has its ACL row."""
    import re
    import urllib.parse
    import urllib.request

    from models.contracts.alert import Alert, Source
    from streams.workbench.store import Store

    conns, files, _ = secured
    alert = Alert.build(detector="waste.weight_discrepancy", version="1", key="sec-1", stream="waste", severity="high",
                        tier="violation", entity_kind="carrier", entity_id="SEC-CR-1", institution_id="SEC-H1",
                        region="310101", event_t=1791000000.0, score=2.0, reason="short by 3 kg",
                        numbers={"missing_kg": 3.0}, evidence=[Source("zhijian.waste", 0, 1, "SEC-M-1")])
    write(conns["admin"], "zhijian.alerts", alert.to_json())
    db = tmp_path / "console.db"
    Store(str(db)).add_user("sec-li", "analyst", "sec-li's long password")
    port = free_port()
    log = open(tmp_path / "console.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "console", "--config", str(files["analyst"]),
                             "--port", str(port), "--db", str(db)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "console.log").read_text()
            try:
                opener.open(base + "/login", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "console.log").read_text()
                time.sleep(0.5)
        opener.open(base + "/login", urllib.parse.urlencode(
            {"user": "sec-li", "password": "sec-li's long password"}).encode(), timeout=10)
        while True:
            page = opener.open(base + "/search?q=SEC-M-1", timeout=10).read().decode()
            found = re.search(r'href="/cases/([0-9a-f-]{36})"', page)
            if found:
                break
            assert time.monotonic() < deadline, page[-2000:]
            time.sleep(0.5)
        case_id = found.group(1)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        opener.open(base + f"/cases/{case_id}", urllib.parse.urlencode(
            {"csrf": csrf, "status": "acknowledged", "comment": "called the carrier"}).encode(), timeout=10)
        events = read(conns["admin"], "zhijian.case-events", lambda v: any(case_id.encode() in x for x in v))
        [event] = [orjson.loads(x) for x in events if case_id.encode() in x]
        assert (event["status"], event["user"], event["comment"]) == ("acknowledged", "sec-li", "called the carrier")
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
    text = (tmp_path / "console.log").read_text()
    assert "uthoriz" not in text, text[-3000:]  # no topic it follows or writes was refused
