"""Verdicts follow the numbers: swap the measurements and the sentence swaps with them."""

import pandas as pd
import pytest

from dleff import verdicts


def test_timing_both_orders_and_a_tie():
    quick_first = verdicts.timing("fused", 1.0e-3, 0.05e-3, "forloop", 2.0e-3, 0.05e-3)
    quick_second = verdicts.timing("fused", 2.0e-3, 0.05e-3, "forloop", 1.0e-3, 0.05e-3)
    tie = verdicts.timing("fused", 1.50e-3, 0.05e-3, "forloop", 1.52e-3, 0.05e-3)
    assert quick_first.startswith("fused was 2.00x faster than forloop")
    assert quick_second.startswith("fused was 2.00x slower than forloop")
    assert "within the noise" in tie
    assert "faster" not in tie and "slower" not in tie
    assert len({quick_first, quick_second, tie}) == 3


def test_timing_calls_a_gap_inside_the_spread_noise():
    # 20 % apart, but each time wobbles by more than that: no winner.
    assert verdicts.timing_outcome(1.0, 0.15, 1.2, 0.15) == verdicts.NOISE
    assert verdicts.timing_outcome(1.0, 0.05, 1.2, 0.05) == verdicts.FASTER
    # zero spread: the relative floor still calls a 1 % gap a tie
    assert verdicts.timing_outcome(1.0, 0.0, 1.01, 0.0) == verdicts.NOISE


def test_timing_rows_reads_a_bench_table():
    table = pd.DataFrame({"median_s": [2.0, 1.0], "min_s": [1.9, 0.95]}, index=["disk", "array"])
    assert verdicts.timing_rows_outcome(table, "array", "disk") == verdicts.FASTER
    assert verdicts.timing_rows_outcome(table, "disk", "array") == verdicts.SLOWER
    swapped = table.rename(index={"disk": "array", "array": "disk"})
    assert verdicts.timing_rows_outcome(swapped, "array", "disk") == verdicts.SLOWER
    with_iqr = table.assign(iqr_s=[3.0, 3.0])  # error bars far wider than the gap
    assert verdicts.timing_rows_outcome(with_iqr, "array", "disk") == verdicts.NOISE


def test_score_both_orders_and_a_tie():
    better = verdicts.score("crop", 0.95, 0.005, "none", 0.90, 0.005)
    worse = verdicts.score("crop", 0.90, 0.005, "none", 0.95, 0.005)
    tie = verdicts.score("crop", 0.921, 0.01, "none", 0.925, 0.01)
    assert "crop scored better than none" in better
    assert "crop scored worse than none" in worse
    assert "within the noise" in tie
    assert len({better, worse, tie}) == 3


def test_score_for_a_loss_prefers_lower():
    assert verdicts.score_outcome(0.3, 0.01, 0.5, 0.01, higher_is_better=False) == verdicts.BETTER
    assert verdicts.score_outcome(0.5, 0.01, 0.3, 0.01, higher_is_better=False) == verdicts.WORSE
    assert "log-loss" in verdicts.score("a", 0.3, 0.01, "b", 0.5, 0.01, metric="log-loss", higher_is_better=False)


def test_mean_and_spread():
    assert verdicts.mean_and_spread([0.9, 0.92]) == pytest.approx((0.91, 0.01414), abs=1e-4)
    mean, spread = verdicts.mean_and_spread([0.9], n_items=100)
    assert mean == 0.9 and spread == pytest.approx(0.03)
    assert verdicts.mean_and_spread([0.9]) == (0.9, 0.0)
    with pytest.raises(ValueError, match="no scores"):
        verdicts.mean_and_spread([])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_unmeasured_numbers_are_refused(bad):
    with pytest.raises(ValueError, match="finite"):
        verdicts.timing("a", bad, 0.0, "b", 1.0, 0.0)
    with pytest.raises(ValueError, match="negative"):
        verdicts.score("a", 0.5, -0.1, "b", 0.5, 0.0)


def test_exercise_checks_say_what_is_missing(capsys):
    from dleff import exercises

    table = pd.DataFrame({"median_s": [2.0, 1.0], "min_s": [1.9, 0.95]}, index=["batch 16", "batch 256"])
    assert not exercises.check_timings(None, ["batch 16", "batch 256"])
    assert not exercises.check_timings(table.rename(index={"batch 256": "batch 64"}), ["batch 16", "batch 256"])
    assert capsys.readouterr().out.count(exercises.NOT_YET) == 2
    assert exercises.check_timings(table, ["batch 16", "batch 256"])
    assert capsys.readouterr().out.startswith(f"{exercises.DONE} batch 256 was 2.00x faster than batch 16")
    assert not exercises.check_scores({"none": 0.9}, ["none", "rotation"], n_items=500)
    assert not exercises.check_scores({"none": 0.9, "rotation": 90.0}, ["none", "rotation"], n_items=500)
    assert exercises.check_scores({"none": 0.90, "rotation": 0.95}, ["none", "rotation"], n_items=500)
    assert "rotation scored better than none" in capsys.readouterr().out


def test_paired_timing_judges_the_pairs_ratios():
    # Epoch 2 is far slower than epoch 1 for both: the times' own spreads overlap, the pairs agree.
    a, b = [0.60, 1.20], [0.50, 1.00]
    assert verdicts.timing_outcome(0.9, 0.3, 0.75, 0.25) == verdicts.NOISE
    assert verdicts.paired_timing_outcome(a, b) == verdicts.SLOWER
    assert verdicts.paired_timing_outcome(b, a) == verdicts.FASTER
    assert verdicts.paired_timing("a", a, "b", b, over="epochs") == (
        "a was 1.20x slower than b (900 ms against 750 ms, medians; time ratio 1.20, from 1.20 to 1.20 over 2 epochs)")
    assert verdicts.paired_timing("b", b, "a", a).startswith("b was 1.20x faster than a")
    assert verdicts.paired_timing_outcome([0.9, 1.1, 1.0], [1.0, 1.0, 1.0]) == verdicts.NOISE
    # The ratios' median says faster, the medians of the times do not: no verdict either way.
    assert verdicts.paired_timing_outcome([0.1, 0.2, 1.5], [1.0, 1.0, 1.0]) == verdicts.FASTER
    assert verdicts.paired_timing_outcome([0.01, 2.0, 1.5], [0.1, 10.0, 1.0]) == verdicts.NOISE
    with pytest.raises(ValueError, match="as many"):
        verdicts.paired_timing_outcome([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        verdicts.paired_timing_outcome([0.0], [1.0])
