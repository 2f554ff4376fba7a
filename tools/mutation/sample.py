"""Keep a seeded random sample of a cosmic-ray session's mutants: every mutant costs a fresh pytest
(torch's import alone is seconds), so a whole module's hundreds of mutants take hours on 2 cores.

usage: python tools/mutation/sample.py SESSION.sqlite COUNT
"""

import random
import sqlite3
import sys

session, count = sys.argv[1], int(sys.argv[2])
with sqlite3.connect(session) as db:
    jobs = sorted(row[0] for row in db.execute("select job_id from work_items"))
    dropped = set(jobs) - set(random.Random(0).sample(jobs, min(count, len(jobs))))
    db.executemany("delete from mutation_specs where job_id = ?", [(job,) for job in dropped])
    db.executemany("delete from work_items where job_id = ?", [(job,) for job in dropped])
print(f"{session}: {len(jobs) - len(dropped)} of {len(jobs)} mutants kept")
