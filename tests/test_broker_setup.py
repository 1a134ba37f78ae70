"""The embedded broker's set-up: one pinned Kafka version everywhere, and one clear line for each
thing a newcomer can be missing (Java, the jars, a free port)."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.kafka.broker import KAFKA_VERSION, MIN_JAVA

ROOT = Path(__file__).resolve().parent.parent


def zhijian(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=ROOT)


def one_clean_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zhijian: error: "), r.stderr
    return lines[0]


def test_one_kafka_version_in_pom_code_and_compose():
    pom = (ROOT / "deploy/kafka/pom.xml").read_text()
    assert re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1) == KAFKA_VERSION
    images = re.findall(r"image:\s*apache/kafka:(\S+)", (ROOT / "docker-compose.yml").read_text())
    assert images and set(images) == {KAFKA_VERSION}


def test_missing_jars(tmp_path):
    line = one_clean_line(zhijian("broker", "--ephemeral", "--port", "0",
                                  env={"ZHIJIAN_KAFKA_LIBS": str(tmp_path / "nothing")}))
    assert f"Apache Kafka {KAFKA_VERSION} jars are not in {tmp_path / 'nothing'}" in line and "make setup" in line


def test_missing_java(tmp_path):
    # no JAVA_HOME and a PATH without java (the interpreter is called by its full path)
    line = one_clean_line(zhijian("broker", "--ephemeral", env={"JAVA_HOME": "", "PATH": str(tmp_path)}))
    assert "Java is not installed" in line and "make setup" in line


def test_java_too_old(tmp_path):
    java = tmp_path / "jdk8" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text('#!/bin/sh\necho \'openjdk version "1.8.0_392"\' >&2\n')
    java.chmod(0o755)
    line = one_clean_line(zhijian("broker", "--ephemeral", env={"JAVA_HOME": str(tmp_path / "jdk8")}))
    assert f"is Java 8; the embedded Kafka broker needs Java {MIN_JAVA}+" in line and "JAVA_HOME" in line


def test_port_taken():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        line = one_clean_line(zhijian("broker", "--ephemeral", "--port", str(port)))
    assert f"port {port} on 127.0.0.1 is taken" in line and "--port" in line


@pytest.mark.parametrize("text,major", [('openjdk version "17.0.15" 2025-04-15', 17),
                                        ('openjdk version "25" 2025-09-16', 25),
                                        ('java version "1.8.0_392"', 8)])
def test_java_major(text, major):
    from connectors.kafka.broker import java_major

    assert java_major(text) == major
