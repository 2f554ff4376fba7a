"""Sentences from measured numbers: every conclusion a lesson prints comes from here.

A lesson never decides in prose which variant won. It passes what it measured (a
centre and a spread per variant) to one of these functions, which says who won,
by how much, or that the difference is within the noise of the measurement:

* `timing`: two run times (faster / slower / within the noise);
* `paired_timing`: two series of run times measured side by side in pairs (rounds,
  epochs), judged on the pairs' ratios, so that a slow spell that hit both alike
  does not hide the difference;
* `score`: two scores, such as accuracies over random seeds (better / worse / within
  the noise); `higher_is_better=False` for losses.

The rule for "within the noise" is the same for both: the two centres are closer
than the sum of their spreads (their error bars overlap), or closer than
`min_relative` of the larger one, a floor for spreads that were measured as zero.
docs/measurements.md explains medians, spreads and why a shared machine needs them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import pandas as pd

FASTER, SLOWER, NOISE = "faster", "slower", "within the noise"
BETTER, WORSE = "better", "worse"


def _check(name: str, value: float, spread: float) -> None:
    if not (math.isfinite(value) and math.isfinite(spread)):
        raise ValueError(f"{name}: the value and its spread must be finite numbers, got {value!r} ± {spread!r}")
    if spread < 0:
        raise ValueError(f"{name}: a spread cannot be negative, got {spread!r}")


def order(a: float, spread_a: float, b: float, spread_b: float, min_relative: float = 0.02) -> int:
    """-1 if a is clearly below b, +1 if clearly above, 0 if the gap is within the noise."""
    gap = a - b
    if abs(gap) <= spread_a + spread_b or abs(gap) <= min_relative * max(abs(a), abs(b)):
        return 0
    return -1 if gap < 0 else 1


def _three(value: float) -> str:
    return f"{value:.3f}"


def _with_spread(value: float, spread: float, text) -> str:
    """"1.2 ms ± 0.1 ms", or just "1.2 ms" when no spread was measured."""
    return f"{text(value)} ± {text(spread)}" if spread > 0 else text(value)


def seconds_text(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def timing_outcome(seconds_a: float, spread_a: float, seconds_b: float, spread_b: float,
                   min_relative: float = 0.02) -> str:
    """FASTER, SLOWER or NOISE: how `a` compares with `b` (times in seconds, spreads likewise)."""
    _check("a", seconds_a, spread_a)
    _check("b", seconds_b, spread_b)
    return {-1: FASTER, 0: NOISE, 1: SLOWER}[order(seconds_a, spread_a, seconds_b, spread_b, min_relative)]


def timing(name_a: str, seconds_a: float, spread_a: float, name_b: str, seconds_b: float, spread_b: float,
           min_relative: float = 0.02) -> str:
    """One sentence comparing two measured times, e.g. "fused was 1.31x faster than forloop (...)".

    seconds_*: the median time; spread_*: its spread in seconds (half the interquartile
    range, or whatever the caller measured). The sentence quotes both, so the reader
    sees the evidence next to the conclusion.
    """
    outcome = timing_outcome(seconds_a, spread_a, seconds_b, spread_b, min_relative)
    evidence = (f"({_with_spread(seconds_a, spread_a, seconds_text)} against "
                f"{_with_spread(seconds_b, spread_b, seconds_text)})")
    return _timing_sentence(outcome, name_a, seconds_a, name_b, seconds_b, evidence)


def _timing_sentence(outcome: str, name_a: str, seconds_a: float, name_b: str, seconds_b: float,
                     evidence: str) -> str:
    """The sentence for a timing outcome, with the speed-up of the two (median) times and the evidence."""
    if outcome == NOISE:
        return f"{name_a} and {name_b} took the same time within the noise {evidence}"
    if outcome == FASTER:
        return f"{name_a} was {seconds_b / seconds_a:.2f}x faster than {name_b} {evidence}"
    return f"{name_a} was {seconds_a / seconds_b:.2f}x slower than {name_b} {evidence}"


def paired_ratios(seconds_a: Sequence[float], seconds_b: Sequence[float]) -> list[float]:
    """a_i / b_i for times measured in pairs (a_i beside b_i)."""
    if not seconds_a or len(seconds_a) != len(seconds_b):
        raise ValueError(f"paired times need as many of a as of b (at least one), got {len(seconds_a)} "
                         f"and {len(seconds_b)}")
    for a, b in zip(seconds_a, seconds_b):
        _check("a", a, 0.0)
        _check("b", b, 0.0)
        if a <= 0 or b <= 0:
            raise ValueError(f"times must be positive, got {a!r} and {b!r}")
    return [a / b for a, b in zip(seconds_a, seconds_b)]


def _median_and_half_range(values: Sequence[float]) -> tuple[float, float]:
    return statistics.median(values), (max(values) - min(values)) / 2


def paired_timing_outcome(seconds_a: Sequence[float], seconds_b: Sequence[float], min_relative: float = 0.02) -> str:
    """FASTER, SLOWER or NOISE for `a` against `b`, from pairs: the ratios' median against 1.

    The same rule as `order`, with the ratios' half range as the spread; and the
    two series' medians must point the same way, or it is NOISE.
    """
    ratio, spread = _median_and_half_range(paired_ratios(seconds_a, seconds_b))
    sign = order(ratio, spread, 1.0, 0.0, min_relative)
    if sign != order(statistics.median(seconds_a), 0.0, statistics.median(seconds_b), 0.0, 0.0):
        sign = 0
    return {-1: FASTER, 0: NOISE, 1: SLOWER}[sign]


def paired_timing(name_a: str, seconds_a: Sequence[float], name_b: str, seconds_b: Sequence[float],
                  over: str = "rounds", min_relative: float = 0.02) -> str:
    """One sentence from times measured in pairs, quoting both medians and the ratios' range."""
    outcome = paired_timing_outcome(seconds_a, seconds_b, min_relative)
    ratios = paired_ratios(seconds_a, seconds_b)
    median_a, median_b = statistics.median(seconds_a), statistics.median(seconds_b)
    evidence = (f"({seconds_text(median_a)} against {seconds_text(median_b)}, medians; time ratio "
                f"{statistics.median(ratios):.2f}, from {min(ratios):.2f} to {max(ratios):.2f} over "
                f"{len(ratios)} {over})")
    return _timing_sentence(outcome, name_a, median_a, name_b, median_b, evidence)


def spread_of(table: pd.DataFrame, row: str) -> float:
    """The spread of one row of a `bench.mark` table, in seconds.

    Half the interquartile range where the table records it (`iqr_s`); otherwise the
    distance from the median to the fastest run (`median_s - min_s`), the part of the
    spread that `bench.mark` keeps.
    """
    if "iqr_s" in table.columns:
        return float(table.loc[row, "iqr_s"]) / 2
    return float(table.loc[row, "median_s"] - table.loc[row, "min_s"])


def timing_rows(table: pd.DataFrame, a: str, b: str, min_relative: float = 0.02) -> str:
    """`timing` for two rows of a `bench.mark` table (its index names the rows)."""
    return timing(a, float(table.loc[a, "median_s"]), spread_of(table, a),
                  b, float(table.loc[b, "median_s"]), spread_of(table, b), min_relative)


def timing_rows_outcome(table: pd.DataFrame, a: str, b: str, min_relative: float = 0.02) -> str:
    return timing_outcome(float(table.loc[a, "median_s"]), spread_of(table, a),
                          float(table.loc[b, "median_s"]), spread_of(table, b), min_relative)


def score_outcome(score_a: float, spread_a: float, score_b: float, spread_b: float, higher_is_better: bool = True,
                  min_relative: float = 0.0) -> str:
    """BETTER, WORSE or NOISE: how `a` compares with `b`."""
    _check("a", score_a, spread_a)
    _check("b", score_b, spread_b)
    sign = order(score_a, spread_a, score_b, spread_b, min_relative)
    if not higher_is_better:
        sign = -sign
    return {1: BETTER, 0: NOISE, -1: WORSE}[sign]


def score(name_a: str, score_a: float, spread_a: float, name_b: str, score_b: float, spread_b: float,
          metric: str = "accuracy", higher_is_better: bool = True, min_relative: float = 0.0) -> str:
    """One sentence comparing two measured scores, e.g. "flips scored worse than none (accuracy ...)"."""
    outcome = score_outcome(score_a, spread_a, score_b, spread_b, higher_is_better, min_relative)
    evidence = f"({metric} {_with_spread(score_a, spread_a, _three)} against {_with_spread(score_b, spread_b, _three)})"
    if outcome == NOISE:
        return f"{name_a} and {name_b} scored the same within the noise {evidence}"
    return f"{name_a} scored {outcome} than {name_b} {evidence}"


def mean_and_spread(values: Sequence[float], n_items: int | None = None) -> tuple[float, float]:
    """Mean of scores over random seeds, and its spread.

    With two or more values the spread is their standard deviation. With one value
    and the number of items it was measured on, it is the binomial standard error of
    an accuracy, sqrt(p(1-p)/n): the noise of scoring on a finite validation set.
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no scores to summarise")
    mean = statistics.fmean(values)
    if len(values) > 1:
        return mean, statistics.stdev(values)
    if n_items:
        p = min(max(mean, 0.0), 1.0)
        return mean, math.sqrt(p * (1 - p) / n_items)
    return mean, 0.0
