"""The main job: `zhijian demo` on the embedded broker, as a newcomer runs it."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import orjson


def demo(tmp_path, *args):
    return subprocess.Popen([sys.executable, "-m", "streams.cli", "demo", "--metrics-port", "0", *args],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_demo_writes_alerts_from_all_four_streams(tmp_path):
    out = tmp_path / "a.jsonl"
    p = demo(tmp_path, "--duration", "45", "--speed", "7200", "--alerts-out", str(out))  # 90 simulated hours
    stdout, stderr = p.communicate(timeout=180)
    assert p.returncode == 0, stderr
    alerts = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert {a["stream"] for a in alerts} == {"prescription", "claim", "waste", "telemetry"}
    # what is printed is what is written, one line each
    assert sum(1 for line in stdout.splitlines() if line[:4].isdigit()) == len(alerts)
    assert all(a["evidence"] and a["reason"] for a in alerts)
    assert "Traceback" not in stderr
    # the workbench ran beside it, with a demo user whose password the newcomer can read
    assert "  console  http://127.0.0.1:" in stdout and "user demo, password in .zhijian/console-demo-password" in stdout
    from streams.workbench.store import Store
    password = (tmp_path / ".zhijian" / "console-demo-password").read_text().strip()
    assert Store(tmp_path / ".zhijian" / "console.db").check_password("demo", password) == "supervisor"

    # a second run in the same folder resumes the region where the first stopped (its clock and its ids): it shows
    # what a first run shows, not the first month again with the same claim ids and other contents (issue 21:
    # 104 alert records, then 9,067 — 8,328 of them duplicate charges)
    again = tmp_path / "b.jsonl"
    p = demo(tmp_path, "--duration", "45", "--speed", "7200", "--alerts-out", str(again))
    stdout, stderr = p.communicate(timeout=180)
    assert p.returncode == 0, stderr
    assert "resuming the region at" in stdout
    second = [orjson.loads(line) for line in again.read_bytes().splitlines()]
    duplicates = [a for a in second if a["detector"] == "claim.duplicate_charge"]
    first_duplicates = [a for a in alerts if a["detector"] == "claim.duplicate_charge"]
    # the second run also shows what the worker had not reached when the first stopped (its backlog): a bound of a
    # few times the first run's count, not the flood's eighty-fold
    assert len(second) <= 3 * len(alerts) + 50, (len(alerts), len(second))
    assert len(duplicates) <= 3 * len(first_duplicates) + 20, (len(first_duplicates), len(duplicates))


def test_demo_stops_cleanly_on_ctrl_c(tmp_path):
    p = demo(tmp_path)
    deadline = time.monotonic() + 60
    kids: list[int] = []
    while time.monotonic() < deadline and len(kids) < 3:  # the broker, the worker and the console
        time.sleep(0.5)
        kids = children_of(p.pid)
    assert len(kids) >= 3
    # a second demo in the same folder while the first runs: one line naming what is busy and what to do
    second = subprocess.run([sys.executable, "-m", "streams.cli", "demo", "--metrics-port", "0"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert "another zhijian demo runs in this folder" in second.stderr and "kill" in second.stderr
    time.sleep(3)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)  # under CI's load the worker's graceful stop alone took ~20 s
    assert p.returncode == 0 and "Traceback" not in stderr
    assert "produced" in stdout
    for pid in kids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_a_demo_whose_metrics_port_is_taken_says_so_in_one_line(tmp_path):
    with socket.socket() as taken:  # what a first demo's worker holds
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "streams.cli", "demo", "--metrics-port", str(port)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"port {port}" in r.stderr and "--metrics-port 0" in r.stderr
    assert not (tmp_path / ".zhijian" / "kafka").exists()  # nothing was started
