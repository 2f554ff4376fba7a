"""Sonar (208 sonar returns x 60 energies, mines "M" vs rocks "R"), embedded in the package.

The original R chapter's tabular task (`tsk("sonar")` in mlr3). The CSV beside this module
was converted once from Debian's r-cran-mlbench; see SONAR.md for its origin.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

import torch

CSV_NAME = "sonar.csv"
CLASSES = ("M", "R")  # R's factor levels, in order: label 0 = mine, 1 = rock


@dataclass(frozen=True)
class Sonar:
    """`X` (208, 60) float32 energies in [0, 1], `y` (208,) int64 labels (0 = "M", 1 = "R")."""

    X: torch.Tensor
    y: torch.Tensor
    feature_names: tuple[str, ...]
    classes: tuple[str, ...] = CLASSES

    def __len__(self) -> int:
        return len(self.y)


def load_sonar() -> Sonar:
    """Read the embedded Sonar data; no network, no cache."""
    with resources.files("dleff.data").joinpath(CSV_NAME).open(newline="") as handle:
        rows = csv.reader(handle)
        header = next(rows)
        features, labels = [], []
        for row in rows:
            features.append([float(value) for value in row[:-1]])
            labels.append(CLASSES.index(row[-1]))
    return Sonar(
        X=torch.tensor(features, dtype=torch.float32),
        y=torch.tensor(labels, dtype=torch.int64),
        feature_names=tuple(header[:-1]),
    )
