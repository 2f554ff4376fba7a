"""Data for the course: embedded sets that install with the project, online loaders behind a switch.

Import from the submodule that holds what you need (e.g. `dleff.data.sonar`),
so that loading one data set never imports the others.
"""
