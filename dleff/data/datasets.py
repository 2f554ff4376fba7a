"""Four ways to serve the same images to a DataLoader, from slowest to fastest.

Each class is short on purpose: the lesson shows its source. They live in a
module (not in the notebook) because with `num_workers > 0` macOS and Windows
start worker processes that must import the dataset class by name.

- `DiskImages`: decodes one image file per item, every epoch.
- `ArrayImages`: images already in RAM as a NumPy array, copied into a new
  tensor per item.
- `TensorImages`: images in one tensor, converted once; an item is a view of it.
- `BatchedTensorImages`: as `TensorImages`, but fetches a whole batch with one
  indexing call (`__getitems__`, PyTorch's counterpart of torch-for-R's `.getbatch()`).

All four return the same (image, label) values for the same indices.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from dleff.data.images import ImageData, ImageFiles, read_image


class DiskImages(Dataset):
    """Reads and decodes the image file of item `i` each time it is asked for.

    Nothing is kept in memory, so it works for data sets larger than RAM; but
    every epoch pays again for reading the file and decoding the PNG/JPEG.
    """

    def __init__(self, files: ImageFiles, channels: int | None = None):
        self.paths, self.labels, self.channels = files.paths, files.labels, channels

    def __getitem__(self, i):
        return read_image(self.paths[i], self.channels), self.labels[i]

    def __len__(self):
        return len(self.paths)


class ArrayImages(Dataset):
    """Images in RAM as a NumPy array; each item is copied into a fresh tensor.

    `torch.tensor` allocates new memory and copies the item every time it is
    asked for, and the DataLoader then copies it once more into the batch.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __getitem__(self, i):
        return torch.tensor(self.images[i]), torch.tensor(self.labels[i])

    def __len__(self):
        return len(self.images)


class TensorImages(Dataset):
    """Images converted once into one tensor; item `i` is a view of row `i` (no copy).

    The DataLoader still asks for the items one by one and stacks them into a
    batch with its `collate_fn`.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = torch.as_tensor(images), torch.as_tensor(labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def __len__(self):
        return len(self.images)


class BatchedTensorImages(TensorImages):
    """Fetches a whole batch in one call: the DataLoader passes all its indices at once.

    One gather builds the batch, instead of a Python call per item plus a
    stack. The indices arrive as a Python list: turn them into a tensor first
    (indexing with a list is slow). The result is already a batch, so the
    DataLoader needs `collate_fn=pass_through` (see `make_loader`).
    """

    def __getitems__(self, indices: list[int]):
        rows = torch.as_tensor(indices)
        # index_select, not images[rows]: same result, but on a busy machine with
        # 2+ threads, images[rows] was measured to wait milliseconds for its threads.
        return self.images.index_select(0, rows), self.labels.index_select(0, rows)


def pass_through(batch):
    """The collate function for datasets whose `__getitems__` already returns a batch.

    A list is a batch of single items, still to be collated: `torch.utils.data.Subset`
    has a `__getitems__` of its own that returns one when the dataset it wraps has none.
    """
    return default_collate(batch) if isinstance(batch, list) else batch


class AugmentedDiskImages(DiskImages):
    """Decode plus random augmentation per item: slow work, the kind worker processes can share.

    On 28x28 digits, cropping, flipping, rotating and blurring cost about ten
    times the decoding. With `num_workers > 0` that work runs in other
    processes, which pays off only when the machine has idle cores for them.
    """

    def __init__(self, files: ImageFiles, transform, channels: int | None = None):
        super().__init__(files, channels)
        self.transform = transform

    def __getitem__(self, i):
        image, label = super().__getitem__(i)
        return self.transform(image), label


def default_augmentation(size: int):
    """Random resized crop to size x size, flip, small rotation and blur, as training pipelines use."""
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomRotation(10),
        v2.GaussianBlur(5, sigma=(0.1, 1.0)),
    ])


def dataset_variants(files: ImageFiles, data: ImageData | None = None) -> dict[str, Dataset]:
    """The four datasets over the same images: disk, array, tensor, tensor_batched.

    `data` is what the in-memory variants hold; by default the files are decoded
    once into memory, in the order the disk variant reads them.
    """
    from dleff.data.images import read_images

    data = data if data is not None else read_images(files)
    if len(data) != len(files):
        raise ValueError(f"{len(files)} files but {len(data)} images in memory: "
                         f"build both from the same folder")
    return {
        "disk": DiskImages(files, channels=data.images.shape[1]),
        "array": ArrayImages(data.images.numpy(), data.labels.numpy()),
        "tensor": TensorImages(data.images, data.labels),
        "tensor_batched": BatchedTensorImages(data.images, data.labels),
    }


def make_loader(dataset: Dataset, batch_size: int = 16, *, shuffle: bool = False, num_workers: int = 0,
                **options) -> DataLoader:
    """A DataLoader for any of the variants, with the pass-through collate for batched ones.

    Other keywords (pin_memory, persistent_workers, ...) go to DataLoader.
    """
    if getattr(dataset, "__getitems__", None) is not None:
        options.setdefault("collate_fn", pass_through)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, **options)


def iterate(loader: DataLoader, epochs: int = 1) -> int:
    """Run through the loader `epochs` times doing nothing with the batches; returns how many there were.

    This times the data pipeline alone, as the original R chapter's `iter()` does.
    """
    batches = 0
    for _ in range(epochs):
        for _batch in loader:
            batches += 1
    return batches
