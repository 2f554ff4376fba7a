from collections import OrderedDict

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss
from skorch.callbacks import Callback
from torch import nn

from dleff import augment, optim, train, transfer
from dleff.data.sonar import load_sonar
from dleff.devices import cuda_available, threads
from dleff.models import CNN, MLP
from dleff.train import (
    Unfreeze,
    best_epoch,
    describe,
    history_table,
    make_learner,
    stopped_early,
)


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny networks: extra threads only add synchronisation, and the test machine is shared.
    with threads(1):
        yield


@pytest.fixture(scope="module")
def sonar():
    data = load_sonar()
    return data.X, data.y


def sonar_learner(**kwargs):
    args = dict(module__in_features=60, module__out_features=2, module__hidden=(50, 50),
                progress=False, device="cpu", seed=0)
    args.update(kwargs)
    return make_learner(MLP, **args)


def test_early_stopping_on_sonar_stops_early_and_restores_the_best_epoch(sonar):
    X, y = sonar
    # The seed's set-up: MLP 50-50, batch 256, up to 400 epochs, Adam lr 0.003,
    # validate 0.3, evaluate every 10 epochs, patience 5 (evaluations).
    net = sonar_learner(epochs=400, batch_size=256, lr=0.003, validate=0.3, eval_freq=10, patience=5)
    net.fit(X, y)

    table = history_table(net)
    best = best_epoch(net)
    assert stopped_early(net) and len(net.history) < 400
    assert best == table.loc[table["valid_logloss"].idxmin(), "epoch"]
    assert best % 10 == 0
    # Patience counts evaluations: training ran exactly 5 evaluations (50 epochs) past the best.
    assert len(net.history) == best + 5 * 10

    # The net holds the best epoch's weights: its validation loss is the best in the history.
    _, valid = net.get_split_datasets(X, y)  # the same stratified split (seeded)
    y_valid = [int(valid[i][1]) for i in range(len(valid))]
    proba = net.predict_proba(valid)
    assert log_loss(y_valid, proba, labels=[0, 1]) == pytest.approx(table["valid_logloss"].min(), rel=1e-4)


def test_history_has_validation_every_eval_freq_epochs_and_after_the_last(sonar):
    X, y = sonar
    net = sonar_learner(epochs=10, eval_freq=3).fit(X, y)

    table = history_table(net)
    assert list(table.columns) == ["epoch", "train_logloss", "valid_logloss", "train_accuracy",
                                   "valid_accuracy"]
    assert table["epoch"].tolist() == [3, 6, 9, 10]
    assert table.notna().all().all()
    assert ((table["valid_accuracy"] >= 0) & (table["valid_accuracy"] <= 1)).all()
    # Skipped epochs ran no validation batch at all (that is the saving).
    for row in net.history:
        assert ("valid_batch_count" in row) == (row["epoch"] in (3, 6, 9, 10))
    every = history_table(net, every_epoch=True)
    assert len(every) == 10 and every["train_logloss"].notna().all()


def test_best_epoch_without_early_stopping_is_the_lowest_validation_loss(sonar):
    X, y = sonar
    net = sonar_learner(epochs=20, eval_freq=5, lr=0.01).fit(X, y)
    table = history_table(net)
    assert best_epoch(net) == table.loc[table["valid_logloss"].idxmin(), "epoch"]
    assert not stopped_early(net)


def test_switches_reach_skorch_and_are_visible(sonar):
    X, y = sonar
    net = sonar_learner(epochs=2, optimizer="adamw", fused=True, num_workers=1, eval_freq=1)
    settings = describe(net)
    assert settings["optimizer"] == "AdamW"
    assert settings["optimizer__fused"] is True
    assert settings["iterator_train__num_workers"] == 1
    assert settings["iterator_train__persistent_workers"] is True
    assert settings["device"] == "cpu" and settings["validate"] == 0.3
    net.fit(X, y)
    assert net.optimizer_.defaults["fused"] is True
    assert len(history_table(net)) == 2


@pytest.mark.skipif(cuda_available(), reason="needs a machine without CUDA to ask for a missing GPU")
def test_an_unavailable_device_is_explained():
    with pytest.raises(ValueError, match="not available"):
        sonar_learner(device="cuda")


def test_missing_validation_and_unknown_optimizer_are_explained():
    with pytest.raises(ValueError, match="validate"):
        sonar_learner(validate=None, patience=3)
    with pytest.raises(ValueError, match="optimizer"):
        sonar_learner(optimizer="adamx")


@pytest.mark.parametrize("amp, dtype", [(True, torch.bfloat16), ("fp16", torch.float16)])
def test_mixed_precision_trains_in_half_precision_and_predicts_in_fp32(sonar, amp, dtype):
    X, y = sonar
    seen = []

    class RecordDtype(Callback):
        def on_train_begin(self, net, **kwargs):
            net.module_[0].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))

    net = sonar_learner(epochs=3, eval_freq=1, amp=amp, callbacks=[RecordDtype()]).fit(X, y)
    assert set(seen) == {dtype}
    assert net.precision_.scaler.is_enabled() == (dtype == torch.float16)  # fp16 needs loss scaling
    assert np.isfinite(history_table(net)[["train_logloss", "valid_logloss"]].to_numpy()).all()
    proba = net.predict_proba(X[:5])
    assert proba.dtype == np.float32 and np.allclose(proba.sum(axis=1), 1, atol=1e-5)


def test_compile_switch_compiles_the_module(sonar):
    X, y = sonar
    # The "eager" backend checks the wiring without paying for Inductor's code generation.
    net = sonar_learner(epochs=2, eval_freq=1, compile=True, compile__backend="eager").fit(X, y)
    assert isinstance(net.module_, torch._dynamo.eval_frame.OptimizedModule)
    assert len(history_table(net)) == 2


def test_cnn_on_image_tensors_with_a_fixed_validation_set():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(96, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (96,), generator=generator)
    net = make_learner(CNN, module__batch_norm=True, module__dropout=0.5, epochs=2, batch_size=32,
                       eval_freq=1, validate=(images[64:], labels[64:]), device="cpu", progress=True,
                       seed=0)
    net.fit(images[:64], labels[:64])
    table = history_table(net)
    assert table["epoch"].tolist() == [1, 2]
    assert table["valid_accuracy"].between(0, 1).all()
    assert net.predict(images[:4]).shape == (4,)


class RecordGradients(Callback):
    """Which parameters received a gradient in each epoch."""

    def initialize(self):
        self.by_epoch_ = {}
        return self

    def on_grad_computed(self, net, named_parameters, **kwargs):
        epoch = len(net.history)
        self.by_epoch_[epoch] = {name for name, p in named_parameters if p.grad is not None}


def backbone_and_head():
    return nn.Sequential(OrderedDict(
        backbone=nn.Sequential(nn.Linear(60, 16), nn.ReLU()),
        fc=nn.Linear(16, 2),
    ))


@pytest.mark.parametrize("compiled", [False, True])
def test_unfreeze_trains_the_head_first_then_everything(sonar, compiled):
    X, y = sonar
    recorder = RecordGradients()
    extra = dict(compile=True, compile__backend="eager") if compiled else {}
    net = make_learner(backbone_and_head, epochs=4, eval_freq=1, device="cpu", progress=False, seed=0,
                       callbacks=[Unfreeze(head="fc.*", epochs=2), recorder], **extra)
    net.fit(X, y)

    prefix = "_orig_mod." if compiled else ""  # how a compiled module names its parameters
    head = {prefix + "fc.weight", prefix + "fc.bias"}
    everything = head | {prefix + "backbone.0.weight", prefix + "backbone.0.bias"}
    assert recorder.by_epoch_[1] == head and recorder.by_epoch_[2] == head
    assert recorder.by_epoch_[3] == everything and recorder.by_epoch_[4] == everything
    assert all(p.requires_grad for p in net.module_.parameters())


def test_unfreeze_rejects_a_head_that_matches_nothing(sonar):
    X, y = sonar
    net = make_learner(backbone_and_head, epochs=1, device="cpu", progress=False,
                       callbacks=[Unfreeze(head="classifier.*", epochs=1)])
    with pytest.raises(ValueError, match="classifier"):
        net.fit(X, y)


# ---------------------------------------------------------------- the one loop, in every lesson's configuration


def tiny_images(n, seed):
    """8x8 gray images; the label says whether the upper half is brighter than the lower half."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 8, 8, generator=generator)
    labels = (images[:, :, :4].mean((1, 2, 3)) > images[:, :, 4:].mean((1, 2, 3))).long()
    return images, labels


def tiny_model():
    """The same tiny network for every configuration: a backbone with batch norm, and a head `fc`."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        backbone=nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU()),
        fc=nn.Linear(32, 2),
    ))


def adamw(implementation):
    return lambda model: optim.make_adamw(model.parameters(), implementation, lr=0.01)


def frozen(model):
    transfer.freeze_backbone(model)
    return model


def cached_features(model, data):
    return transfer.extract_features(model, data[0]), data[1]


# lesson -> (how the model is prepared, fit's arguments); "train" is replaced by what the lesson trains on.
CONFIGURATIONS = {
    "03 adamw forloop": (None, dict(optimizer=adamw("forloop"))),
    "03 adamw foreach": (None, dict(optimizer=adamw("foreach"))),
    "03 adamw fused": (None, dict(optimizer=adamw("fused"))),
    "05 autocast bf16": (None, dict(amp=True)),
    "05 autocast fp16 + GradScaler": (None, dict(amp="fp16")),
    "06 validation + early stopping": (None, dict(valid="valid", patience=3, progress=True)),
    "08 frozen backbone": (frozen, dict(train_mode=False, lr=0.05)),
    "08 frozen batch norm": (None, dict(frozen_batchnorm=True)),
    "08 cached features": ("features", dict(lr=0.05)),
    "09 augmented loader": ("augmented", dict(optimizer="adam")),
}


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_the_one_loop_lowers_the_loss_in_every_lessons_configuration(configuration):
    prepare, options = CONFIGURATIONS[configuration]
    train_data, valid_data = tiny_images(256, seed=0), tiny_images(128, seed=1)
    model = tiny_model()
    options = dict(options)
    if callable(options.get("optimizer")):
        options["optimizer"] = options["optimizer"](model)
    if options.get("valid") == "valid":
        options["valid"] = valid_data
    if prepare == "features":
        model.eval()  # the backbone is fixed: its features are computed once
        train_data = cached_features(model, train_data)
        model = model.fc
    elif prepare == "augmented":
        crop = augment.mild_crop(8)  # keeps which half is brighter
        train_data = torch.utils.data.DataLoader(augment.Augmented(*train_data, transform=crop), batch_size=32,
                                                 shuffle=True, generator=torch.Generator().manual_seed(0))
    elif prepare is not None:
        model = prepare(model)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}

    history = train.fit(model, train_data, epochs=8, **{"lr": 3e-3, **options})

    losses = history["train_loss"]
    assert losses.iloc[-1] < 0.8 * losses.iloc[0], losses.tolist()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    if prepare is frozen:
        assert changed == {"fc.weight", "fc.bias"}  # only the head learned
    else:
        assert changed == set(before)
    if "valid" in options:
        assert history["valid_accuracy"].iloc[-1] > 0.7


def test_train_mode_and_frozen_batch_norm_keep_the_running_statistics():
    data = tiny_images(64, seed=0)
    for options, bn_moves in ((dict(), True), (dict(train_mode=False), False), (dict(frozen_batchnorm=True), False)):
        model = tiny_model()
        batch_norm = model.backbone[2]
        train.fit(model, data, epochs=1, **options)
        assert (batch_norm.num_batches_tracked.item() > 0) == bn_moves, options


def test_early_stopping_restores_the_best_epoch():
    model = tiny_model()
    train_data, valid_data = tiny_images(64, seed=0), tiny_images(64, seed=1)
    # A large learning rate overfits 64 images quickly: the validation loss turns up and training stops.
    history = train.fit(model, train_data, valid=valid_data, epochs=200, lr=0.05, patience=3)
    best = history.attrs["best_epoch"]
    assert len(history) == best + 3 < 200
    assert best == history.loc[history["valid_loss"].idxmin(), "epoch"]
    assert train.evaluate(model, valid_data)[0] == pytest.approx(history["valid_loss"].min(), rel=1e-5)
    with pytest.raises(ValueError, match="valid"):
        train.fit(model, train_data, epochs=1, patience=3)


def test_the_profiler_is_stepped_once_per_training_step():
    model = tiny_model()
    data = tiny_images(100, seed=0)  # 4 batches of 32, 32, 32, 4
    schedule = torch.profiler.schedule(wait=1, warmup=1, active=2, repeat=1)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], schedule=schedule) as profiler:
        train.fit(model, data, epochs=2, profiler=profiler)
    assert profiler.step_num == 8
    # The schedule's two active steps were recorded, each with a forward, a backward and an optimizer step.
    assert [event.name for event in profiler.events() if event.name.startswith("ProfilerStep")] == ["ProfilerStep*"] * 2
    names = {event.key for event in profiler.key_averages()}
    assert {"aten::addmm", "AddmmBackward0", "Optimizer.step#AdamW.step"} <= names


def test_the_learner_trains_through_the_one_step(sonar, monkeypatch):
    X, y = sonar
    calls = []

    def counting_step(*args, **kwargs):
        calls.append(kwargs["precision"].dtype)
        return real_step(*args, **kwargs)

    real_step = train.train_step
    monkeypatch.setattr(train, "train_step", counting_step)
    net = sonar_learner(epochs=2, batch_size=64, validate=None, amp=True).fit(X, y)
    assert calls == [torch.bfloat16] * (2 * 4)  # 208 rows: 4 batches of 64 per epoch
    assert len(net.history) == 2


def test_accuracy_reads_tensors_and_loaders_alike():
    model = tiny_model()
    images, labels = tiny_images(50, seed=2)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=7)
    predictions = model.eval()(images).argmax(1)
    expected = float((predictions == labels).float().mean())
    assert train.accuracy(model, images, labels) == pytest.approx(expected)
    assert train.accuracy(model, loader) == pytest.approx(expected)


@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU here: the fp16 + GradScaler step runs on CUDA")
def test_the_one_loop_on_cuda_scales_fp16_losses():
    model = tiny_model().cuda()
    images, labels = (t.cuda() for t in tiny_images(256, seed=0))
    step_precision = train.precision("cuda", amp=True)
    assert step_precision.dtype == torch.float16 and step_precision.scaler.is_enabled()
    history = train.fit(model, (images, labels), epochs=8, lr=3e-3, amp=step_precision)
    assert history["train_loss"].iloc[-1] < 0.8 * history["train_loss"].iloc[0]
    assert step_precision.scaler.get_scale() > 1
