"""NAB: the temperature-dynamics detector on the real NAB series, scored with NAB's windows."""
from __future__ import annotations

import json

import pytest

from streams.cli import main
from streams.nab import DEFAULT_DIR, SERIES, load_series

pytestmark = pytest.mark.skipif(not DEFAULT_DIR.is_dir(), reason="../shared/data/nab is not beside the checkout")


def test_nab_scores_the_real_series_beside_a_reference(tmp_path, capsys):
    out = tmp_path / "nab.json"
    assert main(["nab", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "machine_temperature_system_failure" in printed and "windowed Gaussian (ref.)" in printed
    r = json.loads(out.read_text())
    machine = r["series"][SERIES[0]]["coldchain.abnormal_dynamics"]
    assert machine["windows"] == 4 and machine["detected"] >= 1  # the machine's known failures are seen
    for per_detector in r["series"].values():
        for score in per_detector.values():
            assert -100 <= score["score"] <= 100
    assert set(r["mean"]) == {"coldchain.abnormal_dynamics", "windowed Gaussian (ref.)"}


def test_the_series_are_read_whole_as_recorded_clock_step_included():
    series = load_series(DEFAULT_DIR, SERIES[0])
    assert len(series) == 22695
    # the machine's clock stepped back an hour on 2014-01-07 02:55: readings arrive out of order, as in life
    backwards = [i for i in range(1, len(series)) if series[i][0] <= series[i - 1][0]]
    assert len(backwards) == 1 and series[backwards[0] - 1][0] - series[backwards[0]][0] == 3300


def test_a_missing_nab_folder_is_one_clear_error(tmp_path, capsys):
    assert main(["nab", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zhijian: error: NAB labels not found") and "--data" in err and "Traceback" not in err
