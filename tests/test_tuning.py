import numpy as np
import pytest

from dleff.tuning import tune_lr

SMALL = dict(folds=3, epochs=30, eval_freq=5, patience=2, seed=0)


@pytest.fixture(scope="module")
def grid_result():
    return tune_lr(n_lr=3, **SMALL)


def test_grid_search_tunes_lr_on_a_log_scale_with_epochs_from_early_stopping(grid_result):
    table, best = grid_result.table, grid_result.best
    assert list(table.columns) == ["lr", "valid_logloss_mean", "valid_logloss_std", "valid_accuracy_mean",
                                   "epochs_mean", "epochs_per_fold"]
    assert np.allclose(sorted(table["lr"]), [1e-4, 10**-2.5, 1e-1])  # evenly spaced on the log scale
    assert table["valid_logloss_mean"].is_monotonic_increasing  # best first
    assert (table["valid_logloss_std"] > 0).all()  # resampled: the folds disagree
    for epochs in table["epochs_per_fold"]:
        assert len(epochs) == 3
        # Each fold's epoch is an evaluated epoch within the limit: chosen inside the fit.
        assert all(1 <= e <= 30 and e % 5 == 0 for e in epochs)
    assert best["lr"] == table.loc[0, "lr"]
    assert best["epochs"] == int(np.ceil(table.loc[0, "epochs_mean"]))


def test_the_best_configuration_is_refit_on_all_data_for_the_chosen_epochs(grid_result):
    final = grid_result.final
    assert final.lr == grid_result.best["lr"]
    assert len(final.history) == grid_result.best["epochs"]
    assert final.train_split is None
    assert final.predict_proba(np.zeros((2, 60), dtype=np.float32)).shape == (2, 2)


def test_random_search_draws_learning_rates_in_the_range():
    result = tune_lr(search="random", n_lr=2, refit=False, **SMALL)
    assert len(result.table) == 2 and result.final is None
    assert result.table["lr"].between(1e-4, 1e-1).all()


def test_bad_arguments_say_what_to_pass():
    with pytest.raises(ValueError, match="grid"):
        tune_lr(search="bayes", **SMALL)
    with pytest.raises(ValueError, match="lr_range"):
        tune_lr(lr_range=(0.1, 0.001), **SMALL)
