"""Fast settings for CI and autograding, full settings for students.

`DLEFF_FAST=1` in the environment switches every lesson and graded quiz to
small data, few epochs and few repeats. Lessons pass each knob through `pick`,
so the two settings sit side by side in the notebook.
"""

from __future__ import annotations

import os


def fast() -> bool:
    return os.environ.get("DLEFF_FAST", "").strip().lower() not in ("", "0", "false", "no")


def pick(fast_value, full_value):
    """The value for this run: `fast_value` under DLEFF_FAST=1, else `full_value`."""
    return fast_value if fast() else full_value
