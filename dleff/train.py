"""The course's learner: skorch's NeuralNetClassifier with the seed's training switches.

The seed trains with `lrn("classif.mlp", ...)` from mlr3torch. In Python the
closest well-kept equivalent is skorch: a scikit-learn estimator around a
PyTorch module, with callbacks, a history and early stopping. We use it as it
is and add only what mlr3torch has and skorch lacks:

- `eval_freq`: validate every `eval_freq` epochs (and after the last one),
  not after every epoch; skipped evaluations cost nothing;
- early stopping whose `patience` counts evaluations, as mlr3torch does, and
  which restores the weights of the best epoch;
- `amp`: mixed precision (autocast; fp16 also needs a GradScaler);
- a progress bar over epochs, and a history table as a DataFrame.

`make_learner` builds a configured `Learner` from the seed's arguments. Every
efficiency switch ends up as a plain skorch constructor argument (`device`,
`optimizer__fused`, `iterator_train__num_workers`, `iterator_train__pin_memory`,
`compile`, `amp`), and `describe(net)` prints them, so nothing is hidden.
"""

from __future__ import annotations

import math
from fnmatch import fnmatchcase
from functools import partial

import numpy as np
import pandas as pd
import torch
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

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(device_type: str, amp: bool | str = True) -> torch.dtype:
    """The autocast dtype: bf16 on CPU (and MPS), fp16 on CUDA, unless `amp` names one."""
    if isinstance(amp, str):
        if amp not in AMP_DTYPES:
            raise ValueError(f"amp must be True, False, 'bf16' or 'fp16', got {amp!r}")
        return AMP_DTYPES[amp]
    # fp16 runs on every CUDA GPU (bf16 needs Ampere or newer); CPUs have bf16 kernels, few fp16 ones.
    return torch.float16 if device_type == "cuda" else torch.bfloat16


class Learner(NeuralNetClassifier):
    """A skorch classifier that validates every `eval_freq` epochs and can train in mixed precision.

    Parameters beyond skorch's:
      eval_freq: validate after every `eval_freq`-th epoch and after the last one
        (the seed's `eval_freq`); the history has validation scores only there.
      amp: False (fp32), True (bf16 on CPU/MPS, fp16 with a GradScaler on CUDA),
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
        device_type = self._device_type()
        # fp16 has a narrow range: small gradients underflow to zero unless the loss is scaled up.
        # bf16 has fp32's range and needs no scaler.
        fp16 = bool(self.amp) and amp_dtype(device_type, self.amp) == torch.float16
        self.grad_scaler_ = torch.amp.GradScaler(device_type) if fp16 else None

    def train_step_single(self, batch, **fit_params):
        if getattr(self, "grad_scaler_", None) is None:
            return super().train_step_single(batch, **fit_params)
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        self.grad_scaler_.scale(loss).backward()
        return {"loss": loss, "y_pred": y_pred}

    def train_step(self, batch, **fit_params):
        scaler = getattr(self, "grad_scaler_", None)
        if scaler is None:
            return super().train_step(batch, **fit_params)
        # GradScaler cannot step an optimizer with a closure, so this step has none.
        self._zero_grad_optimizer()
        step = self.train_step_single(batch, **fit_params)
        optimizers = [getattr(self, name + "_") for name in self._optimizers]
        for optimizer in optimizers:
            scaler.unscale_(optimizer)  # callbacks such as gradient clipping see the true gradients
        self.notify("on_grad_computed", named_parameters=TeeGenerator(self.get_all_learnable_params()),
                    batch=batch, training=True)
        for optimizer in optimizers:
            scaler.step(optimizer)  # skips the step when a gradient overflowed
        scaler.update()
        return step


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

    As in mlr3torch, patience counts evaluations, not epochs: with eval_freq=10
    and patience=5, training stops 50 epochs after the best evaluation. Any
    decrease counts as an improvement (threshold 0, as mlr3torch's min_delta).
    The weights of the best epoch are restored at the end (`load_best`);
    `best_epoch_` is the epoch they come from, the seed's
    `internal_tuned_values$epochs`.
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
    """Train only the head for `epochs` epochs, then the whole network (the seed's `t_clbk("unfreeze")`).

    `head`: glob pattern(s) of the parameter names trained from the start, e.g.
    "fc.*" for torchvision's ResNet or "classifier.*" for timm's EfficientNet;
    all other parameters are frozen at epoch 1 and unfrozen at epoch
    `epochs + 1`. Built on skorch's Freezer and Unfreezer. Batch-norm running
    statistics of the frozen part still update in train mode, as in mlr3torch.
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
    """A configured Learner; the defaults are the seed's set-up (MLP on sonar, Adam lr 0.003).

    module: a torch.nn.Module class (with its arguments as `module__name=value`,
      which lets a search rebuild it for every fit) or an instance.
    validate: fraction held out for validation (stratified), None for none, or
      a fixed (X_valid, y_valid) / Dataset.
    eval_freq: validate every `eval_freq` epochs and after the last one.
    patience: early stopping after `patience` evaluations without a lower
      validation loss (counted in evaluations, as mlr3torch does); 0 = off.
      The best epoch's weights are restored; `best_epoch(net)` reports it.
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
        iterator_train__shuffle=True,  # mlr3torch shuffles; skorch does not by default
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
    in train mode, as mlr3torch's training measure), valid_logloss,
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
    "AMP_DTYPES", "EarlyStopping", "EpochProgressBar", "EvalEpochScoring", "EvalPrintLog", "Learner",
    "OPTIMIZERS", "Unfreeze", "amp_dtype", "best_epoch", "describe", "history_table", "make_learner",
    "stopped_early",
]
