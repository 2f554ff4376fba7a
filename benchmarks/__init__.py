"""`make bench`: every figure the course measures, side by side, in one run.

Each `bench_*.py` module has `main(out_dir)`; it writes its tables and plots into
out_dir and its figures into build/bench.json through `dleff.bench.record`.
"""

from pathlib import Path


def write_table(table, stem: Path, index: bool = True, digits: int | None = None) -> None:
    """The table as `stem`.csv (full precision) and `stem`.md (rounded to `digits`, if given)."""
    table.to_csv(stem.with_suffix(".csv"), index=index)
    shown = table if digits is None else table.round(digits)
    stem.with_suffix(".md").write_text(shown.to_markdown(index=index) + "\n")


def save(fig, path: Path) -> None:
    """Write the figure and free it: a benchmark run draws many."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
