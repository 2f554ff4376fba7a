"""`make bench`: every figure the course measures, side by side, in one run.

Each `bench_*.py` module has `main(out_dir)`; it writes its tables and plots into
out_dir and its figures into build/bench.json through `dleff.bench.record`.
"""
