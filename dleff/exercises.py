"""Self-checks for the lessons' "your turn" code exercises.

Each exercise asks the student to change one thing and measure it, and to put the
result in a variable. The check says whether that result is what was asked for
(the right rows, measured numbers) and, if it is, prints the verdict on it. It
never raises: a student who is not done yet reads what is missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from dleff import verdicts

DONE, NOT_YET = "Done:", "Not yet:"


def _not_yet(message: str) -> bool:
    print(f"{NOT_YET} {message}")
    return False


def check_timings(table, rows: Sequence[str]) -> bool:
    """A `bench.mark` table with exactly the rows `rows` (in any order): print the verdict on the first two."""
    if table is None:
        return _not_yet(f"build a bench.mark table with the rows {list(rows)} and assign it to the variable.")
    if not isinstance(table, pd.DataFrame) or "median_s" not in table.columns:
        return _not_yet(f"expected the table bench.mark returns, got {type(table).__name__}.")
    missing = [row for row in rows if row not in table.index]
    extra = [row for row in table.index if row not in rows]
    if missing or extra:
        return _not_yet(f"the table's rows are {list(table.index)}; the exercise asks for {list(rows)} "
                        f"(name each expression exactly so).")
    medians = table.loc[list(rows), "median_s"]
    if not all(math.isfinite(value) and value > 0 for value in medians):
        return _not_yet("some rows have no measured time; run bench.mark again.")
    print(f"{DONE} {verdicts.timing_rows(table, rows[1], rows[0])}")
    return True


def check_scores(scores, keys: Sequence[str], n_items: int, metric: str = "validation accuracy") -> bool:
    """A dict of two accuracies (between 0 and 1) under `keys`: print the verdict on them."""
    if scores is None:
        return _not_yet(f"assign a dict with the keys {list(keys)} and their {metric} to the variable.")
    if not isinstance(scores, Mapping) or sorted(scores) != sorted(keys):
        found = sorted(scores) if isinstance(scores, Mapping) else type(scores).__name__
        return _not_yet(f"expected a dict with the keys {list(keys)}, got {found}.")
    values = {key: float(scores[key]) for key in keys}
    if not all(0.0 <= value <= 1.0 for value in values.values()):
        return _not_yet(f"an accuracy lies between 0 and 1; got {values}.")
    spread = {key: verdicts.mean_and_spread([value], n_items=n_items)[1] for key, value in values.items()}
    first, second = keys
    print(f"{DONE} " + verdicts.score(second, values[second], spread[second], first, values[first], spread[first],
                                      metric=metric))
    return True
