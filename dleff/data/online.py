"""Data sets that come from the internet: Tiny-ImageNet and CIFAR-10.

The course runs offline on the embedded sets in `dleff.data.images`; these
loaders are for students who want the original R chapter's Tiny-ImageNet or a bigger colour
data set. Nothing is downloaded unless you pass `download=True`; without it a
missing data set raises an error that says how to get it.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import CIFAR10

from dleff.data.images import ImageData, ImageFiles, default_cache_dir

TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_IMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
TINY_IMAGENET_FOLDER = "tiny-imagenet-200"


def tiny_imagenet_files(root: Path | str | None = None, *, split: str = "train",
                        download: bool = False) -> ImageFiles:
    """The JPEG files of Tiny-ImageNet-200 (64x64, 200 classes): 100,000 train or 10,000 val images.

    Layout under `<root>/tiny-imagenet-200/`: `wnids.txt` (one WordNet id per
    class), `train/<wnid>/images/*.JPEG`, and `val/images/*.JPEG` labelled by
    `val/val_annotations.txt`. Classes are numbered in sorted wnid order, as
    torchvision's ImageFolder would number them. Some images are grayscale:
    read them with `channels=3` (e.g. `DiskImages(files, channels=3)`).
    `download=True` fetches the 248 MB archive first (root defaults to the cache).
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val' (the test split has no labels), got {split!r}")
    root = Path(root) if root is not None else default_cache_dir() / "tiny-imagenet"
    base = root / TINY_IMAGENET_FOLDER
    if not (base / "wnids.txt").is_file():
        if not download:
            raise FileNotFoundError(
                f"Tiny-ImageNet is not in {base} (no wnids.txt there). Pass download=True to fetch it "
                f"(248 MB from {TINY_IMAGENET_URL}), or pass the root folder that holds "
                f"{TINY_IMAGENET_FOLDER}/."
            )
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(TINY_IMAGENET_URL, download_root=str(root), md5=TINY_IMAGENET_MD5)
    wnids = (base / "wnids.txt").read_text().split()
    classes = tuple(sorted(wnids))
    label_of = {wnid: label for label, wnid in enumerate(classes)}
    if split == "train":
        pairs = _tiny_imagenet_train(base, classes)
    else:
        pairs = _tiny_imagenet_val(base, label_of)
    missing = [str(path) for path, _ in pairs if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} Tiny-ImageNet images listed for {split} are missing, "
                                f"e.g. {missing[0]}; the copy in {base} is incomplete: delete it and "
                                f"download it again")
    return ImageFiles(base / split, tuple(path for path, _ in pairs),
                      torch.tensor([label for _, label in pairs], dtype=torch.int64), classes)


def _tiny_imagenet_train(base: Path, classes: tuple[str, ...]) -> list[tuple[Path, int]]:
    pairs = []
    for label, wnid in enumerate(classes):
        images = base / "train" / wnid / "images"
        files = sorted(path for path in images.glob("*") if not path.name.startswith("."))
        if not files:
            raise FileNotFoundError(f"no training images for class {wnid} in {images}; the copy in {base} is "
                                    f"incomplete: delete it and download it again")
        pairs += [(path, label) for path in files]
    return pairs


def _tiny_imagenet_val(base: Path, label_of: dict[str, int]) -> list[tuple[Path, int]]:
    annotations = base / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise FileNotFoundError(f"{annotations} is missing: the copy in {base} is incomplete; "
                                f"delete it and download it again")
    pairs = []
    for number, line in enumerate(annotations.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in label_of:
            raise ValueError(f"{annotations}, line {number}: expected '<file>\\t<wnid>\\t<box>' with a "
                             f"wnid from wnids.txt, got {line!r}")
        pairs.append((base / "val" / "images" / fields[0], label_of[fields[1]]))
    return sorted(pairs)


class CIFAR10Unverified(CIFAR10):
    """torchvision's CIFAR-10 without the MD5 checks, for folders you wrote or converted yourself.

    The stock class refuses any batch file whose checksum differs from the
    official download's; keep using it for downloaded data.
    """

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


def cifar10(root: Path | str | None = None, *, train: bool = True, download: bool = False,
            verify_checksums: bool = True) -> ImageData:
    """CIFAR-10 (50,000 train or 10,000 test colour images, 32x32) through torchvision.

    Reads `<root>/cifar-10-batches-py/` (root defaults to the cache);
    `download=True` fetches the 163 MB archive first. `verify_checksums=False`
    accepts batch files that are not byte-identical to the official ones.
    """
    root = Path(root) if root is not None else default_cache_dir() / "cifar10"
    folder = root / CIFAR10.base_folder
    if not download and not folder.is_dir():
        raise FileNotFoundError(
            f"CIFAR-10 is not in {folder}. Pass download=True to fetch it (163 MB from {CIFAR10.url}), "
            f"or pass the root folder that holds {CIFAR10.base_folder}/."
        )
    loader = CIFAR10 if verify_checksums else CIFAR10Unverified
    try:
        dataset = loader(str(root), train=train, download=download)
    except (RuntimeError, pickle.UnpicklingError, EOFError) as error:
        raise RuntimeError(
            f"CIFAR-10 in {folder} is incomplete or its files differ from the official ones ({error}). "
            f"Delete the folder and pass download=True, or pass verify_checksums=False for a folder "
            f"you wrote yourself."
        ) from error
    # torchvision keeps the pixels as (N, H, W, C) uint8; the course uses (N, C, H, W) in [0, 1].
    images = torch.from_numpy(np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2))).float().div(255)
    return ImageData(images, torch.tensor(dataset.targets, dtype=torch.int64), tuple(dataset.classes))
