"""The course's networks as plain `nn.Module`s: the original R chapter's (mlr3torch) MLP and its small CNN.

Both are ordinary PyTorch modules (no framework wrapper), so a lesson can
print them, count what they hold, trace or compile them, and hand them to any
training loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from typing import NamedTuple

from torch import nn


class MLP(nn.Sequential):
    """Linear -> ReLU (-> Dropout) for each hidden width, then a linear output layer.

    `MLP(60, 2)` is the original R chapter's `lrn("classif.mlp", neurons = c(100, 100))` on
    sonar. mlr3torch's MLP puts dropout after every activation (its p starts at
    0.5); here dropout defaults to 0 so that the optimizer and JIT lessons
    compare deterministic networks.
    """

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int] = (100, 100),
                 dropout: float = 0.0):
        _check_dropout(dropout)
        layers: list[nn.Module] = []
        width = in_features
        for units in hidden:
            layers += [nn.Linear(width, units), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = units
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)
        self.in_features, self.out_features, self.hidden = in_features, out_features, tuple(hidden)


class CNN(nn.Module):
    """The original R chapter's (mlr3torch) CNN: two conv blocks (32 and 64 channels) and a 128-unit head.

    Each block is Conv 3x3 (padding 1) -> [BatchNorm2d] -> ReLU -> MaxPool 2, so
    the image side halves twice: `image_size` must be divisible by 4 (28 for
    MNIST, 32 for CIFAR-10). The head is Flatten -> Linear 128 -> ReLU ->
    [Dropout p] -> Linear num_classes. The convolutions keep their bias with
    batch norm too, as in the original R chapter, so the two variants differ by batch norm only.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, *,
                 batch_norm: bool = False, dropout: float = 0.0):
        super().__init__()
        _check_dropout(dropout)
        if image_size < 4 or image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4 (two 2x2 poolings), got {image_size}; "
                             f"resize the images, e.g. to 28 or 32 pixels")
        self.batch_norm, self.dropout = batch_norm, dropout
        self.features = nn.Sequential(
            *_conv_block(in_channels, 32, batch_norm),
            *_conv_block(32, 64, batch_norm),
        )
        side = image_size // 4
        head: list[nn.Module] = [nn.Flatten(), nn.Linear(64 * side * side, 128), nn.ReLU()]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(128, num_classes))
        self.head = nn.Sequential(*head)

    def forward(self, images):
        return self.head(self.features(images))


def _conv_block(in_channels: int, out_channels: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    return layers + [nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2)]


def _check_dropout(p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout is a probability in [0, 1), got {p!r}")


class TensorCount(NamedTuple):
    """How many tensors a model holds, and how many numbers are in them."""

    tensors: int
    elements: int


def count_parameters(model: nn.Module, trainable_only: bool = False) -> TensorCount:
    """Parameters: what the optimizer learns (trainable_only skips frozen ones)."""
    params = [p for p in model.parameters() if p.requires_grad or not trainable_only]
    return TensorCount(len(params), sum(p.numel() for p in params))


def count_buffers(model: nn.Module) -> TensorCount:
    """Buffers: state saved with the model but not learned by gradients (e.g. batch norm's running stats)."""
    buffers = list(model.buffers())
    return TensorCount(len(buffers), sum(b.numel() for b in buffers))


@contextmanager
def evaluating(model: nn.Module):
    """The model in eval mode for the block, then back in the mode it was in (even after an error)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
