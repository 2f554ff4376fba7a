import importlib
import sys
import time
import traceback
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from dleff.bench import FIGURES_FILE  # noqa: E402
from dleff.devices import machine_summary  # noqa: E402

OUT = Path("build") / "bench"


def main(only: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    if not only:  # a full run starts afresh: figures from an older run would mix machines and dates
        FIGURES_FILE.unlink(missing_ok=True)
    print(machine_summary(), flush=True)
    names = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    names = [n for n in names if not only or any(o in n for o in only)]
    failed = []
    for name in names:
        start = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            importlib.import_module(f"benchmarks.{name}").main(OUT)
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"   {name} took {time.perf_counter() - start:.0f} s", flush=True)
    print(f"figures: {FIGURES_FILE}; tables and plots: {OUT}/")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
