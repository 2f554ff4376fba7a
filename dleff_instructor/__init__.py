"""The instructor's tooling: release, collect, sandboxed autograde, feedback, grades.

Students never need this package (nor nbgrader): it reads `solutions/`, which only the
instructor's repository holds. Every command takes the course root explicitly
(`DLEFF_COURSE_ROOT`, or the folder `make` runs in), never the package's location.
"""
