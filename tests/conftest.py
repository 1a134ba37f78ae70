"""Shared fixtures: one embedded broker and one worker for the integration tests of a session."""
from __future__ import annotations

import pytest

from connectors.broker import EmbeddedBroker, ensure_topics, free_port
from streams.settings import load_settings
from tests.kafka_helpers import Worker, produce


def pytest_collection_modifyitems(items):
    """Integration = needs a broker: uses the shared one, or lives in a test_integration_* file."""
    for item in items:
        if "broker" in getattr(item, "fixturenames", ()) or "integration" in item.nodeid.split("::")[0]:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as b:
        settings = load_settings(overrides={"kafka": {"bootstrap_servers": b.bootstrap_servers}}, environ={})
        ensure_topics(b.connection, settings.topic_specs())
        yield b


@pytest.fixture(scope="session")
def worker(broker, tmp_path_factory):
    """A running worker that has joined its group (a sentinel reading went through)."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    w = Worker(broker.bootstrap_servers, free_port(), log).start()
    produce(broker.bootstrap_servers, "zhijian.telemetry", [{
        "schema_version": 1, "device_id": "SENTINEL", "device_kind": "fridge", "facility_id": "X",
        "event_time": "2026-01-01T00:00:00+00:00", "temperature_c": 5.0}], key="SENTINEL")
    w.wait_metric("zhijian_events_total", 1, timeout=180, stream="telemetry")
    yield w
    if w.proc and w.proc.poll() is None:
        w.proc.terminate()
        w.proc.wait(20)
