"""Tuning the learning rate while early stopping tunes the epochs inside each fit.

The original R chapter's "internal tuning": `epochs = to_tune(upper = 100, internal = TRUE)`
and `opt.lr = to_tune(1e-4, 1e-1, logscale = TRUE)`. Here scikit-learn's
GridSearchCV does the outer search over learning rates spaced evenly on a log
scale, resampled with stratified k-fold cross-validation so the choice is not a
single split's accident. Inside every fit the learner holds out 30% of its
training fold and early stopping picks the number of epochs; a second scorer
records that epoch, so the results table shows it beside the log-loss.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, StratifiedKFold

from dleff import settings
from dleff.devices import threads as torch_threads
from dleff.train import Learner, best_epoch, make_learner


@dataclass
class TuningResult:
    """`table`: one row per learning rate, best first; `best`: {"lr", "epochs"}; `final`: refit on all."""

    table: pd.DataFrame
    best: dict
    search: GridSearchCV | RandomizedSearchCV
    final: Learner | None
    seconds: float


def _epochs_scorer(net, X, y):
    return best_epoch(net)


def tune_lr(
    X=None,
    y=None,
    *,
    lr_range: tuple[float, float] = (1e-4, 1e-1),
    n_lr: int | None = None,
    search: str = "grid",
    folds: int | None = None,
    epochs: int | None = None,
    eval_freq: int | None = None,
    patience: int | None = None,
    hidden=(50, 50),
    dropout: float = 0.0,
    batch_size: int = 256,
    validate: float = 0.3,
    refit: bool = True,
    seed: int = 0,
    threads: int = 1,
    n_jobs: int = 1,
) -> TuningResult:
    """Tune an MLP's learning rate on a log scale; early stopping sets the epochs inside each fit.

    X, y: features and integer labels; default the embedded sonar data.
    search: "grid" (n_lr rates evenly spaced on the log scale) or "random"
      (n_lr rates drawn log-uniformly, as a random-search tuner would).
    folds: stratified k-fold resampling of the outer search; each candidate's
      log-loss is the mean (and std) over the held-out folds.
    epochs: the upper limit early stopping works under (the original R chapter's upper = 100).
    threads: torch threads during the search; a 50-50 MLP on 208 rows is
      fastest with one (more threads only add synchronisation).
    refit: train the best configuration on all data for the chosen number of
      epochs, without a validation split.
    Fast settings (DLEFF_FAST=1) shrink n_lr, folds, epochs and patience.
    """
    n_lr = settings.pick(3, 7) if n_lr is None else n_lr
    folds = settings.pick(3, 5) if folds is None else folds
    epochs = settings.pick(60, 100) if epochs is None else epochs
    eval_freq = settings.pick(5, 10) if eval_freq is None else eval_freq
    patience = settings.pick(3, 5) if patience is None else patience
    low, high = lr_range
    if not 0 < low < high:
        raise ValueError(f"lr_range must be (low, high) with 0 < low < high, got {lr_range}")
    if search not in ("grid", "random"):
        raise ValueError(f"search must be 'grid' or 'random', got {search!r}")
    if patience < 1:
        raise ValueError("patience must be >= 1: early stopping is what chooses the epochs here")
    if X is None:
        from dleff.data.sonar import load_sonar

        data = load_sonar()
        X, y = data.X, data.y
    X, y = _as_numpy(X, np.float32), _as_numpy(y, np.int64)

    from dleff.models import MLP

    learner = make_learner(
        MLP, module__in_features=X.shape[1], module__out_features=int(y.max()) + 1,
        module__hidden=tuple(hidden), module__dropout=dropout,
        epochs=epochs, batch_size=batch_size, validate=validate, eval_freq=eval_freq,
        patience=patience, device="cpu", progress=False, seed=seed,
    )
    resampling = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scoring = {"logloss": "neg_log_loss", "accuracy": "accuracy", "epochs": _epochs_scorer}
    if search == "grid":
        lrs = np.geomspace(low, high, n_lr)
        searcher = GridSearchCV(learner, {"lr": list(lrs)}, scoring=scoring, cv=resampling,
                                refit=False, n_jobs=n_jobs)
    else:
        searcher = RandomizedSearchCV(learner, {"lr": loguniform(low, high)}, n_iter=n_lr,
                                      scoring=scoring, cv=resampling, refit=False, n_jobs=n_jobs,
                                      random_state=seed)

    start = time.perf_counter()
    with torch_threads(threads):
        searcher.fit(X, y)
        table = results_table(searcher)
        best_row = table.iloc[0]
        # The epochs chosen in the folds are averaged and rounded up to a whole epoch.
        best = {"lr": float(best_row["lr"]), "epochs": int(math.ceil(best_row["epochs_mean"]))}
        final = None
        if refit:
            final = clone(learner).set_params(lr=best["lr"], max_epochs=best["epochs"],
                                              train_split=None, callbacks=[])
            final.fit(X, y)
    return TuningResult(table=table, best=best, search=searcher, final=final,
                        seconds=time.perf_counter() - start)


def results_table(searcher) -> pd.DataFrame:
    """One row per learning rate of a fitted search: log-loss mean/std over folds, epochs; best first."""
    results = searcher.cv_results_
    n_splits = searcher.n_splits_
    table = pd.DataFrame({
        "lr": np.asarray(results["param_lr"], dtype=float),
        "valid_logloss_mean": -results["mean_test_logloss"],
        "valid_logloss_std": results["std_test_logloss"],
        "valid_accuracy_mean": results["mean_test_accuracy"],
        "epochs_mean": results["mean_test_epochs"],
        "epochs_per_fold": [
            [int(results[f"split{i}_test_epochs"][row]) for i in range(n_splits)]
            for row in range(len(results["param_lr"]))
        ],
    })
    return table.sort_values("valid_logloss_mean", kind="stable").reset_index(drop=True)


def _as_numpy(values, dtype):
    if hasattr(values, "numpy"):
        values = values.numpy()
    return np.asarray(values, dtype=dtype)
