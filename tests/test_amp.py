import math

import pytest
import torch

from dleff import amp, train
from dleff.data.sonar import load_sonar
from dleff.devices import threads
from dleff.models import CNN, MLP


def test_autocast_type_per_device():
    assert amp.autocast_dtype("cpu") == torch.bfloat16
    assert amp.autocast_dtype("cuda") == torch.float16
    # Apple's MPS: fp16, in the lessons' helpers and in the learner alike (they once disagreed).
    assert amp.autocast_dtype("mps") == train.amp_dtype("mps") == torch.float16
    assert train.precision("mps", amp=True).dtype == torch.float16
    for device_type in ("cpu", "cuda", "mps"):
        assert amp.autocast_dtype(device_type) == train.amp_dtype(device_type)
    with pytest.raises(ValueError, match="amp='bf16'"):
        amp.autocast_dtype("tpu")
    with pytest.raises(ValueError, match="fp32, amp"):
        amp.step_precision("cpu", precision="half")


def test_bf16_autocast_trains_sonar_as_well_as_fp32():
    sonar = load_sonar()
    with threads(1):  # tiny tensors: one thread is fastest, and immune to a busy machine
        runs = {precision: amp.train(lambda: MLP(60, 2), sonar.X, sonar.y, precision=precision,
                                     device="cpu", epochs=30, seed=0)
                for precision in amp.PRECISIONS}
    assert runs["amp"].dtype == torch.bfloat16 and runs["fp32"].dtype == torch.float32
    assert runs["fp32"].accuracy > 0.8
    assert abs(runs["amp"].accuracy - runs["fp32"].accuracy) <= 0.05
    # bf16 keeps ~3 significant digits: the loss curves stay close, not equal
    assert runs["amp"].losses == pytest.approx(runs["fp32"].losses, rel=0.05)
    assert runs["amp"].losses != runs["fp32"].losses


def test_amp_step_keeps_float32_weights_and_loss():
    model = MLP(6, 3, hidden=(8,))
    precision = amp.step_precision("cpu")
    loss, output = train.train_step(model, torch.optim.AdamW(model.parameters()), torch.randn(4, 6),
                                    torch.tensor([0, 1, 2, 0]), precision=precision)
    assert output.dtype == torch.bfloat16  # the forward ran under autocast ...
    assert loss.dtype == torch.float32  # ... and the loss came back in float32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert not precision.scaler.is_enabled()  # bfloat16 needs no loss scaling


def test_float16_gets_a_grad_scaler():
    model = MLP(6, 3, hidden=(8,))
    precision = amp.step_precision("cpu", dtype=torch.float16)
    assert precision.scaler.is_enabled()
    loss, _ = train.train_step(model, torch.optim.AdamW(model.parameters()), torch.randn(4, 6),
                               torch.tensor([0, 1, 2, 0]), precision=precision)
    assert math.isfinite(loss.item())
    assert precision.scaler.get_scale() > 1  # the loss was multiplied before backward


def test_saved_for_backward_bytes_counts_each_tensor_once():
    a = torch.randn(1000, requires_grad=True)
    b = torch.randn(1000, requires_grad=True)
    assert amp.saved_for_backward_bytes(lambda: (a * b).sum()) == 2 * 1000 * 4
    assert amp.saved_for_backward_bytes(lambda: (a * a).sum()) == 1000 * 4
    assert amp.saved_for_backward_bytes(lambda: (a * b).sum(), already_held=[a]) == 1000 * 4


def test_saved_bytes_of_a_linear_layer_are_its_activations():
    layer = torch.nn.Linear(100, 50)
    x = torch.randn(8, 100)
    # relu saves its float32 output (8 x 50); linear saves x and the weight, both held already
    saved = amp.saved_for_backward_bytes(lambda: torch.relu(layer(x)).sum(),
                                         already_held=[*layer.parameters(), x])
    assert saved == 8 * 50 * 4
    with torch.autocast("cpu", dtype=torch.bfloat16):
        saved_bf16 = amp.saved_for_backward_bytes(lambda: torch.relu(layer(x)).sum(),
                                                  already_held=[*layer.parameters(), x])
    # a bf16 copy of x (for the weight's gradient) and a bf16 relu output; the weight itself is
    # only needed for x's gradient, and x needs none
    assert saved_bf16 == (8 * 100 + 8 * 50) * 2


def test_compare_precisions_reports_time_memory_and_accuracy():
    torch.manual_seed(0)
    images, labels = torch.rand(32, 1, 16, 16), torch.randint(0, 3, (32,))
    table = amp.compare_precisions(lambda: CNN(1, 3, 16), images, labels, device="cpu", epochs=1,
                                   batch_size=16, min_run_time=0.05)
    assert list(table.index) == ["fp32", "amp"]
    assert list(table["dtype"]) == ["float32", "bfloat16"]
    assert (table["step_s"] > 0).all() and table["peak_bytes"].isna().all()
    # A CNN's memory for backward is mostly activations, kept in 2 bytes instead of 4; max-pool's
    # int64 indices and the 16-bit weight copies keep the saving well short of one half.
    assert table.loc["amp", "saved_bytes"] < 0.9 * table.loc["fp32", "saved_bytes"]
    assert table["step_speedup"].tolist() == pytest.approx(
        [1.0, table.loc["fp32", "step_s"] / table.loc["amp", "step_s"]])
    assert table["accuracy"].between(0, 1).all()


def test_amp_can_cost_memory_when_weights_outweigh_activations():
    # Small batch, wide layers: the 16-bit weight copies autocast saves outweigh the activations it halves.
    sonar = load_sonar()
    table = amp.compare_precisions(lambda: MLP(60, 2, hidden=(256, 256)), sonar.X, sonar.y, device="cpu",
                                   epochs=1, batch_size=16, min_run_time=0.01)
    assert table.loc["amp", "saved_bytes"] > table.loc["fp32", "saved_bytes"]


def test_saved_bytes_grow_with_the_batch_and_amp_wins_at_large_batches():
    model = MLP(60, 2, hidden=(256, 256))
    X, y = torch.rand(1024, 60), torch.randint(0, 2, (1024,))
    table = amp.saved_bytes_by_batch_size(model, X, y, [8, 64, 1024])
    assert table["fp32_bytes"].is_monotonic_increasing and table["amp_bytes"].is_monotonic_increasing
    assert table["amp_vs_fp32"].iloc[0] > 1 > table["amp_vs_fp32"].iloc[-1]
