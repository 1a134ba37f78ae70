"""The workbench store on PostgreSQL (``--db postgresql://…``): the same migrations, users and case events as on
SQLite, against a real PostgreSQL server started for the test (Debian's postgresql, as `make setup` installs it),
and a console started on it serving a signed-in page."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from connectors.kafka.broker import free_port
from streams.workbench.store import Store, StoreError

BIN = next((p for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True) if (p / "initdb").exists()),
           None) if Path("/usr/lib/postgresql").exists() else None
pytestmark = pytest.mark.skipif(BIN is None, reason="make setup installs postgresql")


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user when we are root."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres():
    base = Path(tempfile.mkdtemp(prefix="zhijian-pg-"))  # not under pytest's 0700 root folder: postgres must enter it
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    subprocess.run(_as_postgres([str(BIN / "initdb"), "-D", str(data), "-U", "zhijian", "--auth=trust", "-E", "UTF8"]),
                   check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen(_as_postgres([str(BIN / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sock),
                                            "-c", "listen_addresses=127.0.0.1"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"postgresql://zhijian@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + 30
    while True:
        try:
            Store(url)
            break
        except StoreError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise
            time.sleep(0.3)
    yield url
    server.terminate()
    server.wait(30)
    shutil.rmtree(base, ignore_errors=True)


def test_the_store_keeps_users_and_case_events_in_postgresql(postgres):
    store = Store(postgres)
    assert store.version == 3  # users and events; the secret; assignment and case numbers
    store.add_user("li", "analyst", "a long enough secret")
    store.add_user("li", "supervisor", "another long secret")  # replaced, as on SQLite
    assert store.check_password("li", "another long secret") == "supervisor" and store.check_password("li", "x") is None
    assert store.role_of("li") == "supervisor" and store.users() == 1
    store.add_event({"case_id": "C1", "kind": "status", "at": "2026-11-28T10:00:00+00:00", "user": "li",
                     "status": "closed", "verdict": "fraud", "comment": "<b>confirmed</b>"})
    store.add_event({"case_id": "C1", "kind": "assign", "at": "2026-11-28T11:00:00+00:00", "user": "li",
                     "assignee": "wang", "due": "2026-12-01"})
    store.add_case_numbers([("C1", 2026, 1), ("C2", 2026, 2)])
    secret = store.secret()
    again = Store(postgres)  # a second console on the same database: migrations already applied, same secret
    assert again.version == 3 and again.secret() == secret
    assert again.events() == [{"case_id": "C1", "kind": "status", "at": "2026-11-28T10:00:00+00:00", "user": "li",
                               "status": "closed", "verdict": "fraud", "comment": "<b>confirmed</b>", "assignee": None,
                               "due": None},
                              {"case_id": "C1", "kind": "assign", "at": "2026-11-28T11:00:00+00:00", "user": "li",
                               "status": None, "verdict": None, "comment": None, "assignee": "wang",
                               "due": "2026-12-01"}]
    assert again.case_numbers() == {"C1": (2026, 1), "C2": (2026, 2)}
    again.add_case_numbers([("C2", 2026, 2)])  # given again after a restart: kept once
    assert again.case_numbers() == {"C1": (2026, 1), "C2": (2026, 2)}


def test_a_console_runs_on_postgresql_and_a_wrong_url_is_one_line(postgres, broker, tmp_path):
    env = {**os.environ, "ZHIJIAN_CONSOLE_PASSWORD": "wang's long password"}
    r = subprocess.run([sys.executable, "-m", "streams.cli", "console-user", "wang", "--role", "operator", "--db",
                        postgres], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and "saved in postgresql://zhijian@" in r.stdout
    port = free_port()
    with open(tmp_path / "console.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "console", "--bootstrap-servers",
                                 broker.bootstrap_servers, "--port", str(port), "--db", postgres], stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5).read().decode()
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "console.log").read_text()
                    time.sleep(0.5)
            assert 'id="password"' in page
            assert Store(postgres).check_password("wang", "wang's long password") == "operator"
        finally:
            proc.terminate()
            proc.wait(20)
    bad = postgres.replace("zhijian@", "zhijian:secret@").rsplit(":", 1)[0] + ":1/postgres"
    r = subprocess.run([sys.executable, "-m", "streams.cli", "console", "--bootstrap-servers", broker.bootstrap_servers,
                        "--db", bad], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "cannot connect to postgresql://zhijian:***@127.0.0.1:1/postgres" in r.stderr
    assert "secret" not in r.stderr and "Traceback" not in r.stderr
