"""The dynamics model on artificial series of the kinds anomaly benchmarks use (streams/lab/artificial.py), scored
with the project's NAB scorer: series without an anomaly get (almost) no alarm — also read every 15 minutes and
with gaps — and every anomaly window is found, well above a windowed Gaussian on the same series."""
from __future__ import annotations

import random

import pytest

from streams.lab import artificial
from streams.lab.nab import dynamics_alarms, windowed_gaussian_alarms
from streams.lab.nab_score import rows_of, score_file

NORMAL = [n for n, (kind, _) in artificial.SERIES.items() if kind == "normal"]
ANOMALY = [n for n, (kind, _) in artificial.SERIES.items() if kind == "anomaly"]


def _gaps(s: artificial.Series, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    out = []
    for _ in range(6):  # six silences of 1–6 h over the two weeks
        start = rng.uniform(s.rows[0], s.rows[-1])
        out.append((start, start + rng.uniform(1, 6) * 3600))
    return out


@pytest.mark.parametrize("name", NORMAL)
def test_a_series_without_anomaly_gets_at_most_one_alarm(name):
    for seed in (0, 1, 2):
        s = artificial.series(name, seed)
        for variant in (s, artificial.resampled(s, 900), artificial.resampled(s, 300, _gaps(s, seed))):
            alarms = dynamics_alarms(list(zip(variant.rows, variant.values)), name)
            assert len(alarms) <= 1, (name, seed, len(variant.rows), len(alarms))


@pytest.mark.parametrize("name", ANOMALY)
def test_every_anomaly_window_is_found_early_with_few_false_alarms(name):
    scores = []
    for seed in (0, 1, 2):
        s = artificial.series(name, seed)
        r = score_file(s.rows, rows_of(s.rows, dynamics_alarms(list(zip(s.rows, s.values)), name)), s.windows)
        assert r["detected"] == 1, (name, seed, r)
        assert r["false_alarms"] <= 1, (name, seed, r)
        scores.append(r["score"])
    # found in the window's first half (a detection at the window's end scores about 50)
    assert min(scores) > 60, (name, scores)


def test_the_model_beats_the_windowed_gaussian_on_the_artificial_set():
    ours = theirs = 0.0
    for name in ANOMALY:
        s = artificial.series(name, 0)
        series = list(zip(s.rows, s.values))
        ours += score_file(s.rows, rows_of(s.rows, dynamics_alarms(series, name)), s.windows)["score"]
        theirs += score_file(s.rows, rows_of(s.rows, windowed_gaussian_alarms(series)), s.windows)["score"]
    assert ours / len(ANOMALY) > 75 and ours > 2 * theirs, (ours, theirs)


def test_a_flattened_day_is_found_although_its_mean_is_the_usual_one():
    s = artificial.series("daily_flatmiddle", 1)
    day = s.values[s.start:s.start + 288]
    usual = s.values[s.start - 288:s.start]
    assert abs(sum(day) / 288 - sum(usual) / 288) < 0.5  # the day's level hardly moves: the hours' normals see it
    alarms = dynamics_alarms(list(zip(s.rows, s.values)), "ART")
    first = rows_of(s.rows, alarms)
    assert any(s.start <= i < s.start + 288 for i in first)
