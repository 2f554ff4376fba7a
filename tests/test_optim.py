import pandas as pd
import pytest
import torch

from dleff.models import MLP
from dleff.optim import (
    IMPLEMENTATIONS,
    count_ops,
    make_adamw,
    split_parameters,
    step_seconds_by_tensor_count,
    train_mlp_sonar,
)


@pytest.mark.parametrize("implementation, foreach, fused", [
    ("forloop", False, False), ("foreach", True, False), ("fused", False, True),
])
def test_make_adamw_sets_the_implementation(implementation, foreach, fused):
    optimizer = make_adamw(MLP(3, 2).parameters(), implementation, lr=0.01)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["foreach"] is foreach and optimizer.defaults["fused"] is fused
    assert optimizer.defaults["lr"] == 0.01


def test_three_implementations_train_the_same():
    losses = {name: train_mlp_sonar(name, epochs=10, seed=3) for name in IMPLEMENTATIONS}
    assert len(losses["forloop"]) == 10
    for name in ("foreach", "fused"):
        assert losses[name] == pytest.approx(losses["forloop"], rel=1e-4, abs=1e-5)
    # and training does something: the loss falls
    assert losses["forloop"][-1] < losses["forloop"][0]


def test_the_defaults_are_the_seeds_set_up_on_one_thread(monkeypatch):
    import dleff.optim as optim

    seen = {}
    real_fit = optim.fit

    def recording_fit(model, data, **kwargs):
        seen.update(threads=torch.get_num_threads(), hidden=model.hidden, batch_size=kwargs["batch_size"],
                    epochs=kwargs["epochs"], lr=kwargs["optimizer"].defaults["lr"])
        return real_fit(model, data, **kwargs)

    monkeypatch.setattr(optim, "fit", recording_fit)
    losses = train_mlp_sonar("forloop")
    assert seen == {"threads": 1, "hidden": (100, 100), "batch_size": 32, "epochs": 10, "lr": 1e-3}
    assert losses == train_mlp_sonar("forloop", seed=0)  # seed 0 by default


def test_same_seed_same_losses_other_seed_other_losses():
    first = train_mlp_sonar("forloop", epochs=2, seed=1)
    assert train_mlp_sonar("forloop", epochs=2, seed=1) == first
    assert train_mlp_sonar("forloop", epochs=2, seed=2) != first


def test_errors_say_what_to_do():
    with pytest.raises(ValueError, match="forloop, foreach, fused"):
        make_adamw(MLP(3, 2).parameters(), "ignite")
    integer_param = torch.nn.Parameter(torch.zeros(3, dtype=torch.int64), requires_grad=False)
    with pytest.raises(ValueError, match="implementation='foreach'"):
        make_adamw([integer_param], "fused")


def test_for_loop_calls_grow_with_the_tensor_count_fused_calls_do_not():
    def calls(implementation, pieces):
        optimizer = make_adamw(split_parameters(256, pieces), implementation)
        optimizer.step()
        return count_ops(optimizer.step)

    few, many = calls("forloop", 4), calls("forloop", 32)
    assert many["calls"] == 8 * few["calls"]  # every operator once per tensor
    assert calls("foreach", 32)["calls"] < many["calls"] / 3
    assert calls("fused", 32)["calls"] == calls("fused", 4)["calls"] < 5
    assert many["all"] >= many["calls"]


def test_split_parameters_cuts_the_same_numbers_into_pieces():
    params = split_parameters(12, 4)
    assert [p.numel() for p in params] == [3, 3, 3, 3]
    assert all(p.grad is not None and p.grad.shape == p.shape for p in params)
    with pytest.raises(ValueError, match="cannot split"):
        split_parameters(3, 4)


def test_step_seconds_table_has_a_row_per_tensor_count():
    table = step_seconds_by_tensor_count([1, 4], total=256, min_run_time=0.01)
    assert list(table.index) == [1, 4] and list(table.columns) == list(IMPLEMENTATIONS)
    assert (table > 0).all().all()


def test_step_seconds_default_to_2_to_the_16_numbers_on_one_thread(monkeypatch):
    from dleff import bench

    seen = []

    def fake_mark(*, num_threads, **steps):
        optimizer = steps["forloop"].__self__
        seen.append((num_threads, sum(p.numel() for p in optimizer.param_groups[0]["params"])))
        return pd.DataFrame({"median_s": [1.0] * len(steps)}, index=list(steps))

    monkeypatch.setattr(bench, "mark", lambda min_run_time, memory, **kw: fake_mark(**kw))
    table = step_seconds_by_tensor_count([4])
    assert seen == [(1, 2**16)] and table.loc[4, "fused"] == 1.0
