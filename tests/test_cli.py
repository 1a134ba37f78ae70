"""Errors a user can hit: one clear line naming cause and fix, non-zero exit, no traceback."""
import subprocess
import sys


def zhijian(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_unreachable_broker():
    r = zhijian("worker", "--bootstrap-servers", "127.0.0.1:1", "--connect-timeout", "2", "--metrics-port", "0")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("zhijian: error: Kafka at 127.0.0.1:1 is unreachable")
    assert "ZHIJIAN_BOOTSTRAP_SERVERS" in r.stderr


def test_bad_config_file(tmp_path):
    cfg = tmp_path / "z.toml"
    cfg.write_text("[coldchain.excursion]\nheat_limit = 3\n")
    r = zhijian("worker", "--config", str(cfg))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "unknown setting [coldchain.excursion] heat_limit" in r.stderr
    r = zhijian("worker", "--config", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_bad_bootstrap_syntax():
    r = zhijian("worker", "--bootstrap-servers", "kafka-without-port")
    assert r.returncode == 2 and "host:port" in r.stderr and "Traceback" not in r.stderr


def test_the_worker_refuses_to_run_without_a_real_pseudonymization_key():
    import os

    env = {k: v for k, v in os.environ.items() if k != "ZHIJIAN_PSEUDONYM_KEY"}
    for key, says in ((None, "no pseudonymization key: set ZHIJIAN_PSEUDONYM_KEY"), ("short", "at least 32 bytes")):
        if key:
            env["ZHIJIAN_PSEUDONYM_KEY"] = key
        r = subprocess.run([sys.executable, "-m", "streams.cli", "worker", "--bootstrap-servers", "127.0.0.1:1",
                            "--connect-timeout", "2", "--metrics-port", "0"], capture_output=True, text=True,
                           timeout=60, env=env)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith("zhijian: error: ") and says in r.stderr and len(r.stderr.splitlines()) == 1


def test_a_worker_whose_metrics_port_is_taken_says_so_in_one_line():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = zhijian("worker", "--bootstrap-servers", "127.0.0.1:1", "--metrics-port", str(port))
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert f"port {port} for /metrics is in use" in r.stderr and "--metrics-port 0" in r.stderr


def test_a_program_section_is_typed_by_its_program(tmp_path):
    cfg = tmp_path / "z.toml"
    cfg.write_text("[risk]\nmin_claimz = 5\n")
    r = zhijian("risk", "--config", str(cfg), "--bootstrap-servers", "127.0.0.1:1")
    assert r.returncode == 2 and "unknown setting [risk] min_claimz" in r.stderr and "Traceback" not in r.stderr


def test_a_verdicts_file_with_a_bad_row_is_refused_by_its_line_and_nothing_is_published(tmp_path):
    bad = tmp_path / "audit.csv"
    bad.write_text("institution_id,verdict,decided_on\nH1,fraud,2025-06-30\nH2,fraud,30/06/2025\n")
    r = zhijian("verdicts", "import", str(bad), "--bootstrap-servers", "127.0.0.1:1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "audit.csv line 3: decided_on '30/06/2025' is not a date like 2025-06-30; nothing was published" in r.stderr
    headless = tmp_path / "h.csv"
    headless.write_text("provider,label\nH1,1\n")
    r = zhijian("verdicts", "import", str(headless), "--bootstrap-servers", "127.0.0.1:1")
    assert r.returncode == 2 and "the header must name institution_id, verdict, decided_on" in r.stderr


def test_a_console_with_an_unknown_time_zone_says_so_in_one_line(tmp_path):
    r = zhijian("console", "--timezone", "Mars/Olympus", "--db", str(tmp_path / "c.db"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "--timezone: unknown time zone 'Mars/Olympus': give an IANA name such as Asia/Shanghai" in r.stderr
