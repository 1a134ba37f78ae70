"""A three-broker cluster loses a broker and nothing else.

`zhijian broker --nodes 3` as a user starts it: three KRaft nodes, the project's topics replicated three times
with min.insync.replicas 2. Then the fault run: the simulated region streams through two workers on such a
cluster while the active controller is killed with SIGKILL once and the leader of an input partition once, each
restarted after ten seconds; the alert set by id and the dead letters by reason equal those of an undisturbed
one-worker run on one broker, and the group commits every record (lag zero: the harness waits for it).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from connectors.kafka.broker import free_port, port_is_free


def three_free_ports() -> int:
    """A port whose next two are free as well: the cluster's clients listen on port, port + 1 and port + 2."""
    while True:
        port = free_port()
        if port + 2 < 65536 and port_is_free(port + 1) and port_is_free(port + 2):
            return port


def test_broker_nodes_3_replicates_every_topic_three_times(tmp_path):
    port = three_free_ports()
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "broker", "--nodes", "3", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                            start_new_session=True)
    try:
        lines = []
        deadline = time.monotonic() + 180
        while not any("Ctrl-C stops it" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            lines.append(proc.stdout.readline())
        banner = "".join(lines)
        servers = f"127.0.0.1:{port},127.0.0.1:{port + 1},127.0.0.1:{port + 2}"
        assert f"a cluster of 3 on {servers}" in banner and "ZHIJIAN_REPLICATION_FACTOR=3" in banner
        admin = KafkaAdminClient(bootstrap_servers=servers)
        try:
            assert len(admin.describe_cluster()["brokers"]) == 3
            names = ["zhijian.claims", "zhijian.alerts", "zhijian-claim-state-changelog"]
            topics = {t["name"]: t for t in admin.describe_topics(names)}
            assert set(topics) == set(names)
            for t in topics.values():
                assert t["partitions"] and {len(p["replica_nodes"]) for p in t["partitions"]} == {3}, t
            configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "zhijian.alerts")])
            assert configs["topic"]["zhijian.alerts"]["min.insync.replicas"]["value"] == "2"
        finally:
            admin.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def test_killing_the_controller_and_a_leader_changes_no_alert(tmp_path):
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "streams.cli", "evaluate", "--seed", "5", "--days", "3",
                           "--workers", "2", "--brokers", "3", "--broker-faults", "--broker-down", "10",
                           "--json", str(report)], capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    print(proc.stdout[-2500:], proc.stderr[-2500:])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(report.read_text())
    c = r["comparison"]
    assert c["identical"] and c["missing"] == c["extra"] == [] and c["alerts"] > 20
    assert c["dead_letters_same"] is True
    assert r["brokers"] == 3 and r["workers"] == 2
    faults = r["broker_faults"]
    assert [f["role"] for f in faults] == ["controller", "leader of zhijian.claims[0]"]
    # the commit watch sampled through each fault: about once a second, but one sample can take seconds while a
    # broker is away, and the window (to a minute after the restart) ends early when the run has drained — since the
    # engine keeps pace under a backlog, soon after the second restart (10 samples in a 14.6 s fault, 2026-12-07)
    assert all(f["down_s"] >= 10 and f["commit_samples"] >= f["down_s"] / 3 for f in faults), faults
    assert "| broker killed | down |" in proc.stdout
