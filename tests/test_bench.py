import json

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
    assert (table["min_s"] <= table["median_s"]).all()
    assert table["relative"].min() == pytest.approx(1.0)


def test_memory_counts_the_result_tensor(table):
    # a 64x64 float32 result is 16 KiB; allocator rounding may add a little
    assert table.loc["copy", "mem_alloc_bytes"] >= 64 * 64 * 4


def test_speedup_is_a_ratio_of_medians(table):
    ratio = bench.speedup(table, "small", "copy")
    assert ratio == pytest.approx(table.loc["small", "median_s"] / table.loc["copy", "median_s"])


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


def test_record_merges_figures(tmp_path):
    path = tmp_path / "bench.json"
    bench.record("a.ratio", 2.5, "x", path=path)
    bench.record("b.fraction", 0.4, "fraction", path=path)
    assert json.loads(path.read_text()) == {
        "a.ratio": {"value": 2.5, "unit": "x"},
        "b.fraction": {"value": 0.4, "unit": "fraction"},
    }
    with pytest.raises(ValueError, match="finite"):
        bench.record("c", float("nan"), "x", path=path)


def test_pretty_formats_units(table):
    shown = bench.pretty(table)
    assert shown.loc["small", "median"].endswith(("s", "ms", "µs", "ns"))
