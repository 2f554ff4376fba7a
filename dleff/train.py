"""The course's learner: skorch's NeuralNetClassifier with the original R chapter's (mlr3torch)
training switches.

The original R chapter trains with `lrn("classif.mlp", ...)` from mlr3torch. In Python the
closest well-kept equivalent is skorch: a scikit-learn estimator around a
PyTorch module, with callbacks, a history and early stopping. We use it as it
is and add only what mlr3torch has and skorch lacks:

- `eval_freq`: validate every `eval_freq` epochs (and after the last one),
  not after every epoch; skipped evaluations cost nothing;
- early stopping whose `patience` counts evaluations, as mlr3torch's
  documentation defines it, and which restores the weights of the best epoch
  (mlr3torch keeps the last epoch's weights);
- `amp`: mixed precision (autocast; fp16 also needs a GradScaler);
- a progress bar over epochs, and a history table as a DataFrame.

`make_learner` builds a configured `Learner` from the original R chapter's arguments. Every
efficiency switch ends up as a plain skorch constructor argument (`device`,
`optimizer__fused`, `iterator_train__num_workers`, `iterator_train__pin_memory`,
`compile`, `amp`), and `describe(net)` prints them, so nothing is hidden.

Every training step in the course, the skorch learner's included, is
`train_step` below, and every lesson that trains without skorch calls `fit`:
one place shows what a step does (zero the gradients, forward and loss under
autocast, backward through the GradScaler, optimizer step).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import partial

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from skorch import NeuralNetClassifier
from skorch.callbacks import (
    Callback,
    EpochScoring,
    EpochTimer,
    Freezer,
    PassthroughScoring,
    PrintLog,
    Unfreezer,
)
from skorch.callbacks import EarlyStopping as SkorchEarlyStopping
from skorch.dataset import Dataset, ValidSplit, unpack_data
from skorch.helper import predefined_split
from skorch.utils import TeeGenerator

from dleff import settings
from dleff.devices import resolve_device
from dleff.models import evaluating

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# The course's one choice of autocast type per kind of device. CPUs have bf16 kernels and few fp16
# ones. Every CUDA GPU runs fp16 (bf16 needs Ampere or newer). Apple's MPS runs fp16 autocast on
# every macOS that torch supports, bf16 only from macOS 14 on.
AUTOCAST_DTYPES = {"cpu": torch.bfloat16, "cuda": torch.float16, "mps": torch.float16}


def amp_dtype(device_type: str, amp: bool | str = True) -> torch.dtype:
    """The autocast dtype: bf16 on CPU, fp16 on CUDA and MPS (`AUTOCAST_DTYPES`), unless `amp` names one."""
    if isinstance(amp, str):
        if amp not in AMP_DTYPES:
            raise ValueError(f"amp must be True, False, 'bf16' or 'fp16', got {amp!r}")
        return AMP_DTYPES[amp]
    if device_type not in AUTOCAST_DTYPES:
        raise ValueError(f"no autocast type chosen for device {device_type!r}; use one of "
                         f"{', '.join(AUTOCAST_DTYPES)}, or name the type: amp='bf16' or 'fp16'")
    return AUTOCAST_DTYPES[device_type]


# ---------------------------------------------------------------- the training step and loop


@dataclass
class Precision:
    """How a step computes: in float32 (`dtype` None) or under autocast to `dtype`, with its GradScaler.

    fp16 has a narrow range: small gradients underflow to zero unless the loss is
    scaled up first, so fp16 gets an enabled GradScaler. bf16 has float32's range;
    its scaler (like float32's) is disabled and passes everything through.
    """

    device_type: str
    dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None

    def __post_init__(self):
        if self.scaler is None:
            self.scaler = torch.amp.GradScaler(self.device_type, enabled=self.dtype == torch.float16)

    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def precision(device: str | torch.device, amp: bool | str = False) -> Precision:
    """float32 (`amp=False`), the device's autocast type (`True`, see AUTOCAST_DTYPES), or "bf16"/"fp16"."""
    device_type = torch.device(device).type
    return Precision(device_type, amp_dtype(device_type, amp) if amp else None)


def train_step(model: Callable, optimizer: torch.optim.Optimizer, X, y, *,
               loss_fn: Callable = F.cross_entropy, precision: Precision | None = None,
               on_gradients: Callable[[], None] | None = None, micro_batches: int = 1,
               set_to_none: bool = True):
    """One optimisation step on one batch; returns the (loss, output), detached.

    1. forget the last step's gradients (`set_to_none=False`: overwrite them
    with zeros instead); 2. forward, loss and backward, in `micro_batches`
    parts (see `accumulate_gradients`); 3. the optimizer step (skipped by the
    scaler when an fp16 gradient overflowed).
    Frozen parameters (requires_grad=False) get no gradient, and optimizers
    skip parameters without one. `on_gradients()` runs between backward and the
    step, on the true (unscaled) gradients: the place for gradient clipping.
    """
    if precision is None:
        precision = Precision(X.device.type)
    optimizer.zero_grad(set_to_none=set_to_none)
    loss, output = accumulate_gradients(model, X, y, micro_batches, loss_fn=loss_fn, precision=precision)
    if on_gradients is not None:
        precision.scaler.unscale_(optimizer)
        on_gradients()
    precision.scaler.step(optimizer)
    precision.scaler.update()
    return loss, output


def accumulate_gradients(model: Callable, X, y, micro_batches: int = 1, *, loss_fn: Callable = F.cross_entropy,
                         precision: Precision | None = None):
    """Add to `.grad` the gradient of the loss over (X, y), in `micro_batches` parts; returns (loss, output), detached.

    Forward and loss run under autocast when `precision` says so, backward
    through its GradScaler (which multiplies the loss for fp16 and is a no-op
    otherwise). With k > 1 parts, each part's mean loss is weighted by its
    share of the batch, so the parts' losses add up to the batch's mean loss
    and their gradients to one backward over the whole batch (up to float
    rounding). Only one part's activations are alive at a time: that is the
    memory saved.
    """
    if precision is None:
        precision = Precision(X.device.type)
    if micro_batches == 1:  # the whole batch as it is (skorch may hand over inputs that cannot be split)
        parts = [(X, y)]
    elif 1 < micro_batches <= len(X):
        parts = list(zip(X.tensor_split(micro_batches), y.tensor_split(micro_batches)))
    else:
        raise ValueError(f"cannot split a batch of {len(X)} into {micro_batches} micro-batches")
    losses, outputs = [], []
    for X_part, y_part in parts:
        with precision.autocast():
            output = model(X_part)
            loss = loss_fn(output, y_part)
        if micro_batches > 1:
            loss = loss * (len(X_part) / len(X))
        precision.scaler.scale(loss).backward()
        losses.append(loss.detach())
        outputs.append(output.detach())
    if micro_batches == 1:
        return losses[0], outputs[0]
    return torch.stack(losses).sum(), torch.cat(outputs)


def batches(data, batch_size: int, generator: torch.Generator | None = None) -> Iterable:
    """(X, y) batches of `data`: an (X, y) pair of tensors, cut in `batch_size` rows (shuffled when a
    `generator` is given), or anything that yields (X, y) batches itself, such as a DataLoader."""
    if not isinstance(data, (tuple, list)):
        yield from data
        return
    X, y = data
    if len(X) != len(y):
        raise ValueError(f"{len(X)} inputs but {len(y)} labels")
    # Cut straight from the tensors, without a DataLoader: what is timed is the model and the optimizer.
    order = torch.randperm(len(X), generator=generator).to(X.device) if generator is not None else None
    for start in range(0, len(X), batch_size):
        rows = order[start:start + batch_size] if order is not None else slice(start, start + batch_size)
        yield X[rows], y[rows]


@torch.no_grad()
def evaluate(model: torch.nn.Module, data, *, loss_fn: Callable = F.cross_entropy,
             batch_size: int = 256) -> tuple[float, float]:
    """(mean loss, accuracy) of `model` on `data` ((X, y) tensors or a loader), in eval mode and
    float32; the model's mode is restored after."""
    device = _device_of(model)
    total_loss, correct, count = 0.0, 0, 0
    with evaluating(model):
        for X, y in batches(data, batch_size):
            X, y = X.to(device), y.to(device)
            output = model(X)
            total_loss += float(loss_fn(output, y)) * len(y)  # the batch's mean loss, weighted by its size
            correct += int((output.argmax(1) == y).sum())
            count += len(y)
    if count == 0:
        raise ValueError("no data to evaluate on")
    return total_loss / count, correct / count


def accuracy(model: torch.nn.Module, data, labels: torch.Tensor | None = None, batch_size: int = 256) -> float:
    """Share of labels the model predicts right (the course's one accuracy), in eval mode and in batches.

    `accuracy(model, images, labels)` or `accuracy(model, loader)`; the model's mode is restored after.
    """
    return evaluate(model, data if labels is None else (data, labels), batch_size=batch_size)[1]


def fit(model: torch.nn.Module, train, *, epochs: int, optimizer="adamw", lr: float = 1e-3,
        batch_size: int = 32, valid=None, amp: bool | str | Precision = False, loss_fn: Callable = F.cross_entropy,
        train_mode: bool = True, frozen_batchnorm: bool = False, patience: int = 0,
        progress: bool = False, profiler=None, seed: int = 0) -> pd.DataFrame:
    """Train `model` in place for `epochs` epochs; one row per epoch: epoch, train_loss (mean over the
    epoch's batches), train_seconds, and with `valid` also valid_loss and valid_accuracy.

    train, valid: (X, y) tensors (cut into shuffled batches of `batch_size`
      with a generator seeded by `seed`) or a DataLoader, e.g. over an
      augmented training set (`dleff.augment.Augmented`); `valid` is never augmented.
    optimizer: "adam", "adamw", "sgd" (built with `lr` over the trainable
      parameters), or a ready optimizer, e.g. `dleff.optim.make_adamw(...)`.
    amp: mixed precision as in `precision` (autocast, GradScaler for fp16), or a `Precision`.
    train_mode=False keeps the whole model in eval mode (a frozen backbone's
      batch-norm statistics stay fixed); frozen_batchnorm=True does that for
      the batch-norm layers only. Freeze parameters by setting requires_grad=False
      (`dleff.transfer.freeze_backbone`); cached features are simply a `train` of features.
    patience: stop after `patience` epochs without a lower valid_loss and restore
      the best epoch's weights (`history.attrs["best_epoch"]`); 0 = off.
    progress: a bar over epochs. profiler: a running `torch.profiler.profile`,
      stepped after every training step (its schedule counts steps).
    """
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"epochs must be at least 0 and batch_size at least 1, got {epochs} and {batch_size}")
    if patience and valid is None:
        raise ValueError("Early stopping watches the validation loss: pass valid=(X_valid, y_valid) or patience=0.")
    device = _device_of(model)
    if isinstance(optimizer, str):
        optimizer = _optimizer_class(optimizer)([p for p in model.parameters() if p.requires_grad], lr=lr)
    step_precision = amp if isinstance(amp, Precision) else precision(device, amp)
    shuffle = torch.Generator().manual_seed(seed)
    rows, best = [], (math.inf, 0, None)
    epoch_range = range(1, epochs + 1)
    if progress:
        from tqdm.auto import tqdm

        epoch_range = tqdm(epoch_range, unit="epoch", desc="training")
    for epoch in epoch_range:
        model.train(train_mode)
        if frozen_batchnorm:
            for module in model.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
        start, total_loss, count = time.perf_counter(), 0.0, 0
        for X, y in batches(train, batch_size, shuffle):
            X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss, _ = train_step(model, optimizer, X, y, loss_fn=loss_fn, precision=step_precision)
            total_loss += loss * len(y)  # a tensor: no wait for the device until the epoch ends
            count += len(y)
            if profiler is not None:
                profiler.step()
        row = {"epoch": epoch, "train_loss": float(total_loss) / max(count, 1),
               "train_seconds": time.perf_counter() - start}
        if valid is not None:
            row["valid_loss"], row["valid_accuracy"] = evaluate(model, valid, loss_fn=loss_fn)
        rows.append(row)
        if progress and valid is not None:
            epoch_range.set_postfix(valid_loss=f"{row['valid_loss']:.4f}", refresh=False)
        if patience:
            if row["valid_loss"] < best[0]:
                best = (row["valid_loss"], epoch, {k: v.clone() for k, v in model.state_dict().items()})
            elif epoch - best[1] >= patience:
                break
    if progress:
        epoch_range.close()
    history = pd.DataFrame(rows, columns=["epoch", "train_loss", "train_seconds"]
                           + (["valid_loss", "valid_accuracy"] if valid is not None else []))
    if patience and best[2] is not None:
        model.load_state_dict(best[2])
        history.attrs["best_epoch"] = best[1]
    return history


def _device_of(model: torch.nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


class Learner(NeuralNetClassifier):
    """A skorch classifier that validates every `eval_freq` epochs and can train in mixed precision.

    Parameters beyond skorch's:
      eval_freq: validate after every `eval_freq`-th epoch and after the last one
        (the original R chapter's `eval_freq`); the history has validation scores only there.
      amp: False (fp32), True (bf16 on CPU; fp16 with a GradScaler on CUDA and MPS),
        or "bf16" / "fp16" to choose the autocast dtype yourself.
      seed: seeds torch before the module is built, so a fit is repeatable.
    The criterion defaults to CrossEntropyLoss (the log-loss), so the module
    returns logits and `predict_proba` applies the softmax.
    """

    def __init__(self, module, *args, criterion=torch.nn.CrossEntropyLoss, eval_freq=1, amp=False,
                 seed=None, **kwargs):
        super().__init__(module, *args, criterion=criterion, **kwargs)
        self.eval_freq = eval_freq
        self.amp = amp
        self.seed = seed

    @property
    def _default_callbacks(self):
        # skorch's defaults, with accuracy scored only on evaluation epochs (train accuracy added).
        return [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
            ("train_acc", EvalEpochScoring("accuracy", name="train_acc", lower_is_better=False,
                                           on_train=True)),
            ("valid_acc", EvalEpochScoring("accuracy", name="valid_acc", lower_is_better=False)),
            ("print_log", EvalPrintLog()),
        ]

    def initialize(self):
        if self.seed is not None:
            torch.manual_seed(self.seed)
        return super().initialize()

    # --- validation every eval_freq epochs -------------------------------------------------

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        if not isinstance(self.eval_freq, int) or self.eval_freq < 1:
            raise ValueError(f"eval_freq must be a positive integer (1: every epoch), not {self.eval_freq!r}")
        # The last epoch is always evaluated, so the final model has validation scores.
        self.last_epoch_ = len(self.history) + (epochs if epochs is not None else self.max_epochs)
        return super().fit_loop(X, y, epochs=epochs, **fit_params)

    def is_eval_epoch(self, epoch: int | None = None) -> bool:
        """Whether epoch `epoch` (default: the current one) is validated."""
        epoch = len(self.history) if epoch is None else epoch
        return epoch % self.eval_freq == 0 or epoch == getattr(self, "last_epoch_", None)

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if not training and not self.is_eval_epoch():
            return  # no validation this epoch: the saving eval_freq is for
        super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)

    # --- mixed precision -------------------------------------------------------------------

    def _device_type(self) -> str:
        return torch.device(self.device or "cpu").type

    def infer(self, x, **fit_params):
        if not self.amp:
            return super().infer(x, **fit_params)
        device_type = self._device_type()
        with torch.autocast(device_type, dtype=amp_dtype(device_type, self.amp)):
            y_pred = super().infer(x, **fit_params)
        # Loss and probabilities in fp32: log-softmax in half precision loses digits, and
        # NumPy has no bf16 for predict_proba.
        return y_pred.float() if isinstance(y_pred, torch.Tensor) else y_pred

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self.precision_ = precision(self._device_type(), self.amp)

    def train_step(self, batch, **fit_params):
        # The course's one training step. `infer` applies the autocast too (for validation and
        # predict); nested in the step's own autocast of the same type it changes nothing.
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        if len(self._optimizers) != 1:
            raise ValueError(f"the course's learner steps one optimizer, this one has {self._optimizers}")

        def notify_gradients():
            self.notify("on_grad_computed", named_parameters=TeeGenerator(self.get_all_learnable_params()),
                        batch=batch, training=True)

        loss, y_pred = train_step(partial(self.infer, **fit_params), self.optimizer_, Xi, yi,
                                  loss_fn=partial(self._training_loss, X=Xi), precision=self.precision_,
                                  on_gradients=notify_gradients)
        return {"loss": loss, "y_pred": y_pred}

    def _training_loss(self, y_pred, y_true, X):
        return self.get_loss(y_pred, y_true, X=X, training=True)


class EvalEpochScoring(EpochScoring):
    """skorch's EpochScoring, scored only on the epochs the learner evaluates."""

    def on_epoch_end(self, net, **kwargs):
        if hasattr(net, "is_eval_epoch") and not net.is_eval_epoch():
            return
        super().on_epoch_end(net, **kwargs)


class EvalPrintLog(PrintLog):
    """skorch's PrintLog (verbose=1), printing evaluation epochs only, so every row has all columns."""

    def on_epoch_end(self, net, **kwargs):
        if hasattr(net, "is_eval_epoch") and not net.is_eval_epoch():
            return
        super().on_epoch_end(net, **kwargs)


class EarlyStopping(SkorchEarlyStopping):
    """Stop when the validation log-loss has not improved for `patience` evaluations.

    Patience counts evaluations, not epochs, as mlr3torch's documentation
    defines it: with eval_freq=10 and patience=5, training stops 50 epochs after
    the best evaluation. Any decrease counts as an improvement (threshold 0,
    mlr3torch's starting min_delta). Unlike mlr3torch, whose learner keeps the
    weights of the last epoch trained, this restores the weights of the best
    epoch at the end (`load_best`); `best_epoch_` is the epoch they come from,
    the original R chapter's `internal_tuned_values$epochs`.
    """

    def __init__(self, patience=5, monitor="valid_loss", threshold=0.0, threshold_mode="abs",
                 lower_is_better=True, sink=print, load_best=True):
        super().__init__(monitor=monitor, patience=patience, threshold=threshold,
                         threshold_mode=threshold_mode, lower_is_better=lower_is_better, sink=sink,
                         load_best=load_best)

    def on_epoch_end(self, net, **kwargs):
        if self.monitor not in net.history[-1]:
            return  # not an evaluation epoch: nothing to compare, no miss counted
        super().on_epoch_end(net, **kwargs)

    def _sink(self, text, verbose):
        # skorch's message says "epochs"; each miss counted here is an evaluation.
        super()._sink(text.replace(f"last {self.patience} epochs", f"last {self.patience} evaluations"),
                      verbose)


class EpochProgressBar(Callback):
    """A tqdm bar over epochs showing the last validation loss (skorch's ProgressBar counts batches)."""

    def on_train_begin(self, net, **kwargs):
        from tqdm.auto import tqdm

        done = len(net.history)
        self.bar_ = tqdm(total=done + net.max_epochs, initial=done, unit="epoch", desc="training")

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        if "valid_loss" in row:
            self.bar_.set_postfix(valid_loss=f"{row['valid_loss']:.4f}", refresh=False)
        self.bar_.update(1)

    def on_train_end(self, net, **kwargs):
        self.bar_.close()
        self.bar_ = None  # keeps the fitted net picklable and clonable


class Unfreeze(Callback):
    """Train only the head for `epochs` epochs, then the whole network (the original R chapter's `t_clbk("unfreeze")`).

    `head`: glob pattern(s) of the parameter names trained from the start, e.g.
    "fc.*" for torchvision's ResNet or "classifier.*" for timm's EfficientNet;
    all other parameters are frozen at epoch 1 and unfrozen at epoch
    `epochs + 1`. Built on skorch's Freezer and Unfreezer. Batch-norm running
    statistics of the frozen part still update in train mode: freezing stops
    gradients, not the statistics.
    """

    def __init__(self, head, epochs=1):
        self.head = head
        self.epochs = epochs

    def initialize(self):
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs (how long only the head trains) must be >= 1, got {self.epochs!r}")
        in_backbone = partial(_outside, patterns=self._patterns())  # a partial pickles, a closure not
        self.freezer_ = Freezer(in_backbone, at=1).initialize()
        self.unfreezer_ = Unfreezer(in_backbone, at=self.epochs + 1).initialize()
        return self

    def on_train_begin(self, net, **kwargs):
        names = [name for name, _ in net.get_all_learnable_params()]
        patterns = self._patterns()
        if all(_outside(name, patterns) for name in names):
            raise ValueError(f"No parameter matches the head pattern(s) {patterns}; the module's "
                             f"parameters are named like {names[:4]} ... Pass patterns such as 'fc.*'.")

    def on_epoch_begin(self, net, **kwargs):
        self.freezer_.on_epoch_begin(net, **kwargs)
        self.unfreezer_.on_epoch_begin(net, **kwargs)

    def _patterns(self):
        return [self.head] if isinstance(self.head, str) else list(self.head)


def _outside(name, patterns):
    """Whether parameter `name` matches none of the glob patterns."""
    name = name.removeprefix("_orig_mod.")  # a compiled module's parameters carry this prefix
    return not any(fnmatchcase(name, pattern) for pattern in patterns)


def _optimizer_class(optimizer):
    if isinstance(optimizer, str):
        try:
            return OPTIMIZERS[optimizer.lower()]
        except KeyError:
            raise ValueError(f"Unknown optimizer {optimizer!r}: pass one of {sorted(OPTIMIZERS)} "
                             "or a torch.optim class") from None
    return optimizer


def _train_split(validate, seed):
    if validate is None or validate == 0:
        return None
    if isinstance(validate, float):
        if not 0 < validate < 1:
            raise ValueError(f"validate must be a fraction in (0, 1), got {validate}")
        # Stratified, as the classes of a small set like sonar would drift otherwise.
        return ValidSplit(validate, stratified=True, random_state=seed)
    if isinstance(validate, tuple):
        return predefined_split(Dataset(*validate))
    if isinstance(validate, torch.utils.data.Dataset):
        return predefined_split(validate)
    raise TypeError("validate must be a fraction such as 0.3, None, a (X_valid, y_valid) tuple "
                    f"or a Dataset, got {type(validate).__name__}")


def make_learner(
    module,
    *,
    epochs: int = 400,
    batch_size: int = 256,
    lr: float = 0.003,
    optimizer="adam",
    fused: bool | None = None,
    foreach: bool | None = None,
    validate=0.3,
    eval_freq: int = 10,
    patience: int = 0,
    device: str = "auto",
    num_workers: int = 0,
    pin_memory: bool = False,
    compile: bool = False,
    amp: bool | str = False,
    progress: bool | str = "auto",
    seed: int | None = None,
    callbacks=(),
    verbose: int = 0,
    **kwargs,
) -> Learner:
    """A configured Learner; the defaults are the original R chapter's set-up (MLP on sonar, Adam lr 0.003).

    module: a torch.nn.Module class (with its arguments as `module__name=value`,
      which lets a search rebuild it for every fit) or an instance.
    validate: fraction held out for validation (stratified), None for none, or
      a fixed (X_valid, y_valid) / Dataset.
    eval_freq: validate every `eval_freq` epochs and after the last one.
    patience: early stopping after `patience` evaluations without a lower
      validation loss (counted in evaluations, as mlr3torch's documentation defines it); 0 = off.
      The best epoch's weights are restored (mlr3torch keeps the last ones); `best_epoch(net)` reports it.
    optimizer: "adam", "adamw", "sgd" or a torch.optim class; `fused` / `foreach`
      choose its implementation (None = torch's default).
    device: "auto" picks cuda > mps > cpu. num_workers / pin_memory go to both
      DataLoaders; with workers, they persist across epochs (starting them every
      epoch would cost more than they save).
    compile: torch.compile the module (skorch's `compile=True`).
    amp: mixed precision, see `Learner`.
    progress: a bar over epochs; "auto" shows it except under DLEFF_FAST=1.
    Other keyword arguments go to skorch (e.g. `module__hidden=(50, 50)`,
    `iterator_train__collate_fn=...`).
    """
    if patience and not validate:
        raise ValueError("Early stopping watches the validation loss: set validate (e.g. 0.3) "
                         "or patience=0.")
    device = str(resolve_device(device))
    optimizer_args = {f"optimizer__{k}": v for k, v in (("fused", fused), ("foreach", foreach))
                      if v is not None}
    loader_args = {}
    for loader in ("iterator_train", "iterator_valid"):
        loader_args[f"{loader}__num_workers"] = num_workers
        loader_args[f"{loader}__pin_memory"] = pin_memory
        if num_workers > 0:
            loader_args[f"{loader}__persistent_workers"] = True

    all_callbacks = list(callbacks)
    if patience:
        all_callbacks.append(("early_stopping", EarlyStopping(patience=patience)))
    if progress == "auto":
        progress = not settings.fast()
    if progress:
        all_callbacks.append(("progress", EpochProgressBar()))

    return Learner(
        module,
        max_epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=_optimizer_class(optimizer),
        **optimizer_args,
        train_split=_train_split(validate, seed),
        eval_freq=eval_freq,
        iterator_train__shuffle=True,  # mlr3torch's learners shuffle by default; skorch does not
        **loader_args,
        device=device,
        compile=compile,
        amp=amp,
        seed=seed,
        callbacks=all_callbacks,
        verbose=verbose,
        **kwargs,
    )


SWITCHES = ("device", "optimizer", "lr", "optimizer__fused", "optimizer__foreach", "batch_size",
            "max_epochs", "eval_freq", "iterator_train__num_workers", "iterator_train__pin_memory",
            "iterator_train__persistent_workers", "compile", "amp")


def describe(net) -> pd.Series:
    """The efficiency switches of a learner, as skorch holds them (show this in a lesson)."""
    params = net.get_params(deep=False)
    values = {}
    for key in SWITCHES:
        if key in params:
            value = params[key]
            values[key] = value.__name__ if isinstance(value, type) else value
    split = params.get("train_split")
    fixed = getattr(split, "keywords", {}).get("valid_ds")  # predefined_split: a fixed validation set
    values["validate"] = f"fixed set of {len(fixed)} rows" if fixed is not None else getattr(split, "cv", split)
    values["callbacks"] = [c[0] if isinstance(c, tuple) else type(c).__name__ for c in net.callbacks or []]
    return pd.Series(values, dtype=object)


def history_table(net, every_epoch: bool = False) -> pd.DataFrame:
    """The history as a DataFrame: one row per evaluation (every eval_freq epochs).

    Columns: epoch, train_logloss (mean loss over the epoch's training batches,
    in train mode, while the weights still change), valid_logloss,
    train_accuracy, valid_accuracy. `every_epoch=True` keeps the epochs without
    validation too (their validation columns are NaN).
    """
    columns = {"epoch": "epoch", "train_loss": "train_logloss", "valid_loss": "valid_logloss",
               "train_acc": "train_accuracy", "valid_acc": "valid_accuracy"}
    rows = [{new: row.get(old, np.nan) for old, new in columns.items()} for row in net.history]
    table = pd.DataFrame(rows, columns=list(columns.values()))
    table["epoch"] = table["epoch"].astype(int)
    evaluated = table["valid_logloss"].notna()
    if not every_epoch and evaluated.any():
        table = table[evaluated].reset_index(drop=True)
    return table.dropna(axis="columns", how="all")


def best_epoch(net) -> int:
    """The epoch early stopping chose (its weights are the net's), else the one with the lowest valid loss."""
    for _, callback in getattr(net, "callbacks_", []):
        if isinstance(callback, SkorchEarlyStopping) and callback.best_epoch_:
            return int(callback.best_epoch_)
    losses = [(row["valid_loss"], row["epoch"]) for row in net.history if "valid_loss" in row]
    if not losses:
        raise ValueError("This learner has no validation scores: fit it with validate=0.3 (or similar).")
    return int(min(losses)[1])


def stopped_early(net) -> bool:
    """Whether training ended before the epoch limit."""
    return len(net.history) < getattr(net, "last_epoch_", math.inf)


__all__ = [
    "AMP_DTYPES", "AUTOCAST_DTYPES", "EarlyStopping", "EpochProgressBar", "EvalEpochScoring", "EvalPrintLog", "Learner",
    "OPTIMIZERS", "Precision", "Unfreeze", "accuracy", "amp_dtype", "batches", "best_epoch", "describe",
    "evaluate", "fit", "history_table", "make_learner", "precision", "stopped_early", "train_step",
]
