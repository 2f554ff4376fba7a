"""Data augmentation with `torchvision.transforms.v2`, for training batches only.

The original R chapter's (mlr3torch) pipeline is a random resized crop
followed by horizontal and vertical flips. Which of these is admissible
depends on the task's invariances: a digit stays the same digit when cropped a little, but a
mirrored 2 or an upside-down 6 is not a 2 or a 6 any more.
`invariance_experiment` measures that on the MNIST subset.

Augmentation belongs to the training data only: a validation or test score
should measure the model on the data it will meet, not on random variations
of it. `Augmented` wraps the training set; the validation set is never wrapped.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision.transforms import v2

from dleff.data.images import mnist_split
from dleff.train import accuracy, fit


def mild_crop(size: int = 28, scale=(0.8, 1.0), ratio=(0.9, 1.1)) -> v2.RandomResizedCrop:
    """A random crop of 80-100 % of the area, near square, resized back to `size` (keeps digits whole)."""
    return v2.RandomResizedCrop(size, scale=scale, ratio=ratio, antialias=True)


def flips(p: float = 0.5) -> v2.Compose:
    """Mirror left-right and upside down, each with probability p."""
    return v2.Compose([v2.RandomHorizontalFlip(p), v2.RandomVerticalFlip(p)])


def seed_pipeline(size: int = 28) -> v2.Compose:
    """The original R chapter's (mlr3torch) pipeline: `augment_random_resized_crop %>>% ..._horizontal_flip
    %>>% ..._vertical_flip`."""
    return v2.Compose([mild_crop(size), flips()])


def augmentations(size: int = 28) -> dict[str, v2.Transform | None]:
    """The variants `invariance_experiment` compares, by name."""
    return {"none": None, "flips": flips(), "mild crop": mild_crop(size)}


class Augmented(Dataset):
    """A training set whose images pass through `transform` each time they are read.

    The transform runs per image, so every image gets its own random crop or
    flip. (A v2 transform called on a whole batch tensor draws once and treats
    every image in it the same way.)
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=None):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]


def loaders(train, valid, transform=None, batch_size: int = 64, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """(train_loader, valid_loader) from (images, labels) tensors; `transform` touches training batches only."""
    train_loader = DataLoader(Augmented(*train, transform=transform), batch_size=batch_size, shuffle=True,
                              generator=torch.Generator().manual_seed(seed))
    valid_loader = DataLoader(TensorDataset(*valid), batch_size=256)
    return train_loader, valid_loader


def small_cnn(num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """The course's CNN for gray digits (dleff.models)."""
    from dleff.models import CNN

    return CNN(in_channels=1, num_classes=num_classes, image_size=image_size)


def train_and_validate(model: nn.Module, train_loader: DataLoader, valid_loader: DataLoader, *,
                       epochs: int, lr: float = 1e-3) -> float:
    """Train with Adam for `epochs` epochs (the course's loop, `dleff.train.fit`); the validation accuracy.

    The training batches come augmented if the loader's dataset is `Augmented`;
    the validation loader is read as it is. epochs=0 only evaluates.
    """
    fit(model, train_loader, epochs=epochs, optimizer="adam", lr=lr)
    return accuracy(model, valid_loader)


def invariance_experiment(n_train: int = 4000, n_valid: int = 1000, *, epochs: int = 3, seeds=(0,),
                          lr: float = 1e-3, batch_size: int = 64) -> pd.DataFrame:
    """Validation accuracy of the same CNN trained without augmentation, with flips, and with a mild crop.

    One row per augmentation: mean accuracy over `seeds` and its difference to "none".
    On digits, flips break the label and should cost accuracy; a mild crop keeps it.
    """
    train, valid = mnist_split(n_train, n_valid)
    rows = []
    for name, transform in augmentations(train[0].shape[-1]).items():
        for seed in seeds:
            torch.manual_seed(seed)  # the same initial weights and shuffling for every augmentation
            train_loader, valid_loader = loaders(train, valid, transform, batch_size, seed)
            model = small_cnn(image_size=train[0].shape[-1])
            rows.append({"augmentation": name, "seed": seed,
                         "valid_accuracy": train_and_validate(model, train_loader, valid_loader,
                                                              epochs=epochs, lr=lr)})
    table = pd.DataFrame(rows).groupby("augmentation", sort=False)["valid_accuracy"].mean().to_frame()
    table["minus_none"] = table["valid_accuracy"] - table.loc["none", "valid_accuracy"]
    return table


def show_augmented(images: torch.Tensor, transform, n_versions: int = 5, seed: int = 0, title: str = ""):
    """A grid: each row one image, first column the original, then `n_versions` augmented draws."""
    import matplotlib.pyplot as plt

    torch.manual_seed(seed)
    rows = len(images)
    fig, axes = plt.subplots(rows, n_versions + 1, figsize=(1.3 * (n_versions + 1), 1.3 * rows), squeeze=False)
    for r, image in enumerate(images):
        versions = [image] + [transform(image) for _ in range(n_versions)]
        for c, version in enumerate(versions):
            ax = axes[r, c]
            shown = version.permute(1, 2, 0).squeeze(-1).clamp(0, 1).numpy()
            ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(f"#{r}", rotation=0, labelpad=12)
    axes[0, 0].set_title("original", fontsize=9)
    for c in range(1, n_versions + 1):
        axes[0, c].set_title(f"draw {c}", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
