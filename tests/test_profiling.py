"""Section 10's library: the profiler helpers, peak memory, accumulation, checkpointing, ratios."""

import pytest
import torch
from torch import nn

from dleff import profiling, train, verdicts
from dleff.data.datasets import ArrayImages, make_loader
from dleff.models import MLP


@pytest.fixture
def mlp():
    torch.manual_seed(0)
    return MLP(20, 3, hidden=(16, 16))


def test_four_micro_batches_of_16_give_the_gradients_of_one_batch_of_64(mlp):
    X, y = torch.randn(64, 20), torch.randint(0, 3, (64,))
    gradients = {}
    for micro_batches in (1, 4):
        mlp.zero_grad()
        loss, _ = train.accumulate_gradients(mlp, X, y, micro_batches)
        gradients[micro_batches] = [p.grad.clone() for p in mlp.parameters()]
        assert loss.item() == pytest.approx(nn.functional.cross_entropy(mlp(X), y).item(), rel=1e-5)
    for whole, pieces in zip(gradients[1], gradients[4]):
        torch.testing.assert_close(pieces, whole, atol=1e-6, rtol=1e-5)
    # the weighting matters: unweighted micro-batch losses give 4 times the gradient
    assert not torch.allclose(gradients[4][0] * 4, gradients[1][0])
    with pytest.raises(ValueError, match="cannot split a batch of 64 into 65"):
        train.accumulate_gradients(mlp, X, y, 65)


def test_checkpointed_model_computes_the_same_and_saves_memory():
    torch.manual_seed(0)
    deep = MLP(64, 4, hidden=(128,) * 8)
    X, y = torch.randn(2048, 64), torch.randint(0, 4, (2048,))
    wrapped = profiling.checkpointed(deep, 4)
    assert all(a is b for a, b in zip(wrapped.parameters(), deep.parameters()))  # shared, not copied
    torch.testing.assert_close(wrapped(X), deep(X))

    def gradients(model):
        deep.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(X), y).backward()
        return [p.grad.clone() for p in deep.parameters()]

    for plain, recomputed in zip(gradients(deep), gradients(wrapped)):
        torch.testing.assert_close(recomputed, plain)
    deep.zero_grad(set_to_none=True)
    peaks = {name: profiling.peak_memory(lambda m=model: nn.functional.cross_entropy(m(X), y).backward())
             for name, model in (("plain", deep), ("checkpointed", wrapped))}
    assert peaks["plain"].source.startswith("profiler memory timeline")
    # plain keeps 8 layer outputs of 2048 x 128 floats (1 MiB each); 4 segments keep their inputs and one
    # segment's outputs at a time
    assert peaks["checkpointed"].peak_bytes < 0.85 * peaks["plain"].peak_bytes
    with pytest.raises(ValueError, match="segments must be between 1 and"):
        profiling.CheckpointedSequential(nn.Linear(2, 2), segments=2)


def test_peak_memory_sees_a_temporary_tensor():
    def make_and_drop():
        torch.ones(4 * 2**20 // 4).sum()  # 4 MiB alive for a moment

    assert profiling.peak_memory(make_and_drop).peak_bytes >= 4 * 2**20
    with pytest.raises(ValueError, match="cpu or cuda"):
        profiling.peak_memory(make_and_drop, "meta")


def test_profile_finds_the_per_item_loader_and_writes_a_trace(mlp, tmp_path):
    X, y = torch.randn(256, 20), torch.randint(0, 3, (256,))
    loader = make_loader(ArrayImages(X.numpy(), y.numpy()), batch_size=32)
    optimizer = torch.optim.SGD(mlp.parameters(), lr=0.1)
    trace = tmp_path / "trace.json"
    prof = profiling.profile_training(mlp, optimizer, loader, wait=1, warmup=1, active=2, trace_file=trace)
    table = profiling.top_operators(prof, n=50)
    assert table.loc["ProfilerStep*", "calls"] == 2  # only the active steps are kept
    assert any(name.startswith(profiling.LOADER_EVENT) for name in table.index)
    shares = profiling.time_shares(prof)
    assert 0 < shares["loading"] < 1 and shares["step_ms"] > 0
    assert '"traceEvents"' in trace.read_text()[:2000]
    with pytest.raises(ValueError, match="fewer than the 12 steps"):
        profiling.profile_training(mlp, optimizer, loader, wait=1, warmup=1, active=10)


def test_step_clears_gradients_the_way_it_is_told(mlp):
    X, y = torch.randn(8, 20), torch.randint(0, 3, (8,))
    optimizer = torch.optim.SGD(mlp.parameters(), lr=0.0)
    seen = []
    optimizer.register_step_pre_hook(lambda *_: seen.append(mlp[0].weight.grad.clone()))
    for set_to_none in (True, False):
        step = profiling.make_step(mlp, optimizer, set_to_none=set_to_none)
        step(X, y)
        step(X, y)  # with lr 0 the same gradient again: it must not pile up on the first
    assert all(torch.allclose(g, seen[0]) for g in seen)
    mlp.zero_grad(set_to_none=False)
    assert mlp[0].weight.grad is not None
    profiling.make_step(mlp, optimizer, set_to_none=True)(X, y)
    with pytest.raises(ValueError, match="micro_batches"):
        profiling.make_step(mlp, optimizer, micro_batches=0)


def test_ratio_and_verdicts():
    noisy = profiling.Ratio((1.0, 1.0, 1.0), (0.9, 1.0, 1.2))
    assert noisy.median == pytest.approx(1.0) and (noisy.low, noisy.high) == pytest.approx((0.9, 1.2))
    assert noisy.outcome() == verdicts.NOISE and "within the noise" in noisy.verdict("x", "y")
    faster = profiling.Ratio((1.0, 1.1, 1.0), (0.5, 0.6, 0.55))
    assert faster.outcome() == verdicts.FASTER and faster.verdict("x", "y").startswith("x was 1.82x faster than y")
    slower = profiling.Ratio((1.0, 1.0, 1.0), (1.5, 1.6, 1.4), over="epochs")
    assert slower.outcome() == verdicts.SLOWER and "slower" in slower.verdict("x", "y")
    assert str(slower) == "1.50x (range 1.40-1.60 over 3 epochs)"
    with pytest.raises(ValueError, match="as many"):
        profiling.Ratio((1.0,), (1.0, 2.0))
    ratio = profiling.time_ratio(lambda: sum(range(20000)), lambda: sum(range(20)), rounds=2, min_run_time=0.01)
    assert len(ratio.values) == 2 and ratio.high < 1 and ratio.outcome() == verdicts.FASTER


def test_the_steps_two_switches_change_only_how_gradients_are_made(mlp):
    import copy

    X, y = torch.randn(64, 20), torch.randint(0, 3, (64,))
    twin = copy.deepcopy(mlp)
    steps = {"plain": profiling.make_step(mlp, torch.optim.SGD(mlp.parameters(), lr=0.1)),
             "switched": profiling.make_step(twin, torch.optim.SGD(twin.parameters(), lr=0.1), micro_batches=4,
                                             set_to_none=False)}
    losses = {name: step(X, y) for name, step in steps.items()}
    torch.testing.assert_close(losses["switched"], losses["plain"])
    for plain, switched in zip(mlp.parameters(), twin.parameters()):
        torch.testing.assert_close(switched, plain, atol=1e-6, rtol=1e-5)  # the same update
    # set_to_none=False zeroes the gradient tensors and fills them again; True makes new ones
    kept = {name: [p.grad for p in model.parameters()] for name, model in (("plain", mlp), ("switched", twin))}
    for step in steps.values():
        step(X, y)
    assert all(p.grad is g for p, g in zip(twin.parameters(), kept["switched"]))
    assert not any(p.grad is g for p, g in zip(mlp.parameters(), kept["plain"]))
