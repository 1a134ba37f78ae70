"""Shared fixtures: one embedded broker and one worker for the integration tests of a session."""
from __future__ import annotations

import gc
import os

import pytest

from connectors.kafka.broker import free_port
from models.contracts.pseudonym import KEY_ENV
from models.engine.runtime import GC_THRESHOLDS

# the tests' pseudonymization key, inherited by every worker process they start (there is no default key)
os.environ.setdefault(KEY_ENV, "zhijian-tests-" + "k" * 40)
# detectors run here with the collector tuned as in the worker (a third of the conformance checks went to full
# collections walking the cached simulated streams)
gc.set_threshold(*GC_THRESHOLDS)
from tests.kafka_helpers import Worker, broker_with_topics, produce


def pytest_collection_modifyitems(items):
    """Integration = needs a broker: uses the shared one, or lives in a test_integration_* file."""
    for item in items:
        if "broker" in getattr(item, "fixturenames", ()) or "integration" in item.nodeid.split("::")[0]:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    with broker_with_topics(tmp_path_factory.mktemp("broker") / "broker.log") as b:
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
