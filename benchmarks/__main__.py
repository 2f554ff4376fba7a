"""`make bench`: every figure into build/bench.json (under the course root); --compare another run."""

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from dleff.bench import compare_files, figures_file  # noqa: E402
from dleff.devices import machine_summary  # noqa: E402
from dleff.paths import course_root  # noqa: E402


def main(only: list[str], other: Path | None = None) -> int:
    out = course_root() / "build" / "bench"
    figures = figures_file()
    out.mkdir(parents=True, exist_ok=True)
    if not only:  # a full run starts afresh: figures from an older run would mix machines and dates
        figures.unlink(missing_ok=True)
    print(machine_summary(), flush=True)
    names = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    names = [n for n in names if not only or any(o in n for o in only)]
    failed = []
    for name in names:
        start = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            importlib.import_module(f"benchmarks.{name}").main(out)
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"   {name} took {time.perf_counter() - start:.0f} s", flush=True)
    print(f"figures: {figures}; tables and plots: {out}/")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    if other is not None:
        print_comparison(figures, other)
    return 1 if failed else 0


def print_comparison(this: Path, other: Path) -> None:
    table = compare_files(this, other)
    for side, block in table.attrs["machines"].items():
        print(f"{side}: {block}")
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    print("overlap: the two spreads overlap, so the figures differ within noise")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("only", nargs="*", help="run only bench_*NAME* modules")
    parser.add_argument("--compare", type=Path, metavar="OTHER_JSON",
                        help="after the run, compare build/bench.json with this bench.json")
    parser.add_argument("--compare-only", action="store_true", help="compare without measuring anything")
    args = parser.parse_args()
    if args.compare_only:
        if args.compare is None:
            parser.error("--compare-only needs --compare OTHER_JSON")
        print_comparison(figures_file(), args.compare)
        sys.exit(0)
    sys.exit(main(args.only, args.compare))
