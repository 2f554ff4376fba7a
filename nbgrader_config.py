"""nbgrader reads this file from the course root; the configuration itself lives in dleff_instructor."""

import os

from dleff_instructor.config import configure

configure(get_config(), os.environ.get("DLEFF_COURSE_ROOT", os.path.dirname(os.path.abspath(__file__))))  # noqa: F821
