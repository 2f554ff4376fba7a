import json

import pandas as pd
import pytest
import torch

from dleff import bench


@pytest.fixture(scope="module")
def table():
    x = torch.randn(64, 64)
    return bench.mark(min_run_time=0.01, small=lambda: x @ x, copy=lambda: x.clone())


def test_one_row_per_expression_with_the_seed_columns(table):
    assert list(table.index) == ["small", "copy"]
    for column in ("min_s", "median_s", "itr_per_s", "mem_alloc_bytes", "relative"):
        assert column in table
    assert (table["min_s"] <= table["q1_s"]).all() and (table["q1_s"] <= table["median_s"]).all()
    assert (table["median_s"] <= table["q3_s"]).all()
    assert table["relative"].tolist() == pytest.approx((table["median_s"] / table["median_s"].min()).tolist())


def test_the_measurements_are_kept_with_their_spread(table):
    kept = bench.measurements(table)
    assert set(kept) == {"small", "copy"}
    for name, measurement in kept.items():
        row = table.loc[name]
        assert row["median_s"] == measurement.median and row["iqr_s"] == measurement.iqr
        assert row["q3_s"] - row["q1_s"] == pytest.approx(measurement.iqr)
        assert row["runs"] == len(measurement.times)
        assert row["calls"] == len(measurement.times) * measurement.number_per_run
        assert row["has_warnings"] == measurement.has_warnings
    shown = str(bench.compare(table))
    assert "small" in shown and "copy" in shown
    with pytest.raises(ValueError, match="bench.mark"):
        bench.measurements(pd.DataFrame({"median_s": [1.0]}))


def test_a_ratio_carries_its_interval():
    # Two fake rows whose quartiles are known: slow 9-10-12 ms, fast 4-5-5.5 ms.
    rows = pd.DataFrame({"median_s": [0.010, 0.005], "q1_s": [0.009, 0.004], "q3_s": [0.012, 0.0055],
                         "runs": [20, 30], "has_warnings": [False, True]}, index=["slow", "fast"])
    figure = bench.ratio_figure(rows, "slow", "fast")
    assert figure["value"] == pytest.approx(2.0)
    assert figure["spread"] == pytest.approx((0.009 / 0.0055, 0.012 / 0.004))
    assert figure["runs"] == 20 and figure["has_warnings"] is True and figure["unit"] == "x"


def test_memory_counts_the_result_tensor(table):
    # a 64x64 float32 result is 16 KiB; allocator rounding may add a little
    assert table.loc["copy", "mem_alloc_bytes"] >= 64 * 64 * 4


def test_speedup_is_a_ratio_of_medians(table):
    ratio = bench.speedup(table, "small", "copy")
    assert ratio == pytest.approx(table.loc["small", "median_s"] / table.loc["copy", "median_s"])


def test_min_runs_gives_slow_expressions_enough_blocks_for_quartiles():
    import time

    table = bench.mark(min_run_time=0.001, min_runs=4, memory=False, slow=lambda: time.sleep(0.01))
    assert table.loc["slow", "runs"] >= 4 and len(bench.measurements(table)["slow"].times) >= 4


def test_check_catches_different_results():
    with pytest.raises(AssertionError, match="different result"):
        bench.mark(min_run_time=0.01, check=True, one=lambda: torch.ones(2), two=lambda: torch.zeros(2))


def test_needs_callables():
    with pytest.raises(TypeError, match="lambda"):
        bench.mark(x=3)
    with pytest.raises(ValueError, match="keywords"):
        bench.mark()


def test_thread_scaling_reports_speedup_and_efficiency():
    x = torch.randn(32, 32)
    scaling = bench.thread_scaling(lambda: x @ x, counts=[1, 2], min_run_time=0.01)
    assert list(scaling["threads"]) == [1, 2]
    assert scaling.loc[0, "speedup"] == pytest.approx(1.0)
    assert scaling["efficiency"].tolist() == pytest.approx((scaling["speedup"] / scaling["threads"]).tolist())


def test_plots_draw(table):
    import matplotlib

    matplotlib.use("Agg")
    ax = bench.plot(table, title="t")
    assert len(ax.patches) == 2


def test_record_merges_figures_with_spread_and_the_machine(tmp_path):
    path = tmp_path / "bench.json"
    bench.record("a.ratio", 2.5, "x", spread=(2.0, 3.0), path=path, runs=12)
    bench.record("b.seconds", 4.0, "s", spread=None, note="one cold run", path=path)
    stored = json.loads(path.read_text())
    assert stored["a.ratio"] == {"value": 2.5, "unit": "x", "spread": [2.0, 3.0], "runs": 12}
    assert stored["b.seconds"] == {"value": 4.0, "unit": "s", "spread": None, "note": "one cold run"}
    assert stored["machine"]["torch"] == torch.__version__ and stored["machine"]["cores"] >= 1
    assert stored["machine"]["cpu"] and stored["machine"]["threads"] == torch.get_num_threads()
    with pytest.raises(ValueError, match="finite"):
        bench.record("c", float("nan"), "x", spread=(1, 2), path=path)
    with pytest.raises(ValueError, match="note"):
        bench.record("c", 1.0, "x", spread=None, path=path)
    with pytest.raises(ValueError, match="outside"):
        bench.record("c", 5.0, "x", spread=(1, 2), path=path)


def test_figures_go_under_the_course_root_wherever_the_run_starts(tmp_path, monkeypatch):
    course = tmp_path / "course"
    (course / "notebooks").mkdir(parents=True)
    monkeypatch.setenv("DLEFF_COURSE_ROOT", str(course))
    monkeypatch.chdir(tmp_path)
    assert bench.figures_file() == course.resolve() / "build" / "bench.json"
    bench.record("a.ratio", 2.0, "x", spread=(1.5, 2.5))
    assert (course / "build" / "bench.json").is_file() and not (tmp_path / "build").exists()


def test_compare_files_puts_two_runs_side_by_side(tmp_path):
    this, other = tmp_path / "this.json", tmp_path / "other.json"
    bench.record("a.ratio", 2.0, "x", spread=(1.8, 2.2), path=this)
    bench.record("b.ratio", 3.0, "x", spread=(2.9, 3.1), path=this)
    bench.record("a.ratio", 2.1, "x", spread=(2.0, 2.3), path=other)
    bench.record("b.ratio", 1.5, "x", spread=(1.4, 1.6), path=other)
    table = bench.compare_files(this, other)
    assert list(table.index) == ["a.ratio", "b.ratio"]
    assert table.loc["a.ratio", "overlap"] and not table.loc["b.ratio", "overlap"]
    assert table.loc["b.ratio", "this/other"] == pytest.approx(2.0)
    assert set(table.attrs["machines"]) == {"this", "other"}


@pytest.mark.parametrize("seconds, shown", [(2.5, "2.5s"), (0.0123, "12.3ms"), (4.56e-6, "4.56µs"),
                                            (7e-9, "7ns")])
def test_format_seconds_picks_the_unit(seconds, shown):
    assert bench.format_seconds(seconds) == shown


def test_format_bytes_picks_the_unit():
    assert [bench.format_bytes(n) for n in (512, 2048, 3 * 2**20, float("nan"))] == ["512B", "2KB", "3MB", "-"]
