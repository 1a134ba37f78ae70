"""`zhijian evaluate` runs its one-worker reference in a thread beside the run under test (streams/lab/evaluate.py,
ReferenceBeside). What a user relies on: the comparison is the same as when they take turns, a failing reference
stops the run and its error is the one reported, and a failing or interrupted run stops the reference (its
processes stopped) before the error leaves. The pipelines here are stand-ins that record what happened; the real
runs are in tests/test_integration_evaluate.py and tests/test_integration_cluster.py."""
from __future__ import annotations

import argparse
import threading
import time

import pytest

from connectors.errors import ZhijianError
from models.contracts.pseudonym import KEY_ENV
from streams.lab import evaluate


def _args(**kw) -> argparse.Namespace:
    return argparse.Namespace(reference=None, reference_first=False, **kw)


class StandIn:
    """run_pipeline's stand-in: each label's run waits ``waits[label]`` s (or for cancel), then returns an alert
    index or raises ``fails[label]``; ``stopped`` lists the runs that ended, as their ``finally`` would."""

    def __init__(self, waits: dict[str, float], fails: dict[str, BaseException] | None = None) -> None:
        self.waits, self.fails = waits, fails or {}
        self.stopped: list[str] = []
        self.started: list[str] = []

    def __call__(self, args, sim, workers, kill_every, label, *rest, cancel=None):
        self.started.append(label)
        try:
            deadline = time.monotonic() + self.waits[label]
            while time.monotonic() < deadline:
                evaluate._check(cancel)
                time.sleep(0.01)
            if label in self.fails:
                raise self.fails[label]
            return {"alerts": {"a1": {"detector": "d", "entity": {"kind": "k", "id": label}, "event_time": "t"}},
                    "dead_letters": {"not_json": 1}}
        finally:
            self.stopped.append(label)


@pytest.fixture
def stand_in(monkeypatch):
    def make(waits, fails=None):
        fake = StandIn(waits, fails)
        monkeypatch.setattr(evaluate, "run_pipeline", fake)
        monkeypatch.setattr(evaluate, "simulator_from_args", lambda args: object())
        return fake
    return make


def test_the_reference_runs_beside_and_gives_its_alerts_and_dead_letters(stand_in):
    fake = stand_in({"reference": 0.3})
    beside = evaluate.ReferenceBeside(_args())
    time.sleep(0.1)
    assert fake.started == ["reference"] and fake.stopped == []  # under way while the caller goes on
    index, dead = beside.result()
    assert index == {"a1": ["d", "k:reference", "t"]} and dead == {"not_json": 1}


def test_a_failing_reference_cancels_the_run_beside_it_and_its_error_is_the_one_reported(stand_in):
    fake = stand_in({"reference": 0.1, "run": 30}, {"reference": ZhijianError("the reference broker did not start")})
    beside = evaluate.ReferenceBeside(_args())
    started = time.monotonic()
    with pytest.raises(evaluate.Cancelled):
        evaluate.run_pipeline(_args(), None, 2, 20, "run", cancel=beside.cancel)
    assert time.monotonic() - started < 5  # stopped at its next check, not after its 30 s
    with pytest.raises(ZhijianError, match="reference broker did not start"):
        beside.result()
    assert sorted(fake.stopped) == ["reference", "run"]


def test_abandoning_stops_the_reference_and_waits_for_it(stand_in):
    fake = stand_in({"reference": 30})
    beside = evaluate.ReferenceBeside(_args())
    time.sleep(0.05)
    started = time.monotonic()
    beside.abandon()
    assert time.monotonic() - started < 5 and fake.stopped == ["reference"]
    assert not any(t.name == "evaluate-reference" for t in threading.enumerate())
    with pytest.raises(evaluate.Cancelled):
        beside.result()


def test_run_evaluate_stops_the_reference_when_the_run_fails(stand_in, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(KEY_ENV, "k" * 32)  # run_evaluate would otherwise set one in this process's environment
    fake = stand_in({"reference": 30, "run": 0.1}, {"run": ZhijianError("a worker exited with code 1")})

    class Sim:  # what run_evaluate reads before the run starts
        region = argparse.Namespace(institutions=[1], devices=[1])
    monkeypatch.setattr(evaluate, "simulator_from_args", lambda args: Sim())
    args = _args(days=1.0, scale=1.0, workers=2, kill_every=20.0, seed=7, brokers=1, broker_faults=False)
    started = time.monotonic()
    with pytest.raises(ZhijianError, match="worker exited"):
        evaluate.run_evaluate(args)
    assert time.monotonic() - started < 10 and sorted(fake.stopped) == ["reference", "run"]
    assert not any(t.name == "evaluate-reference" for t in threading.enumerate())
