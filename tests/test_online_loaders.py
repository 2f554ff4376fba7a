"""The online loaders (CIFAR-10, Tiny-ImageNet) on small fakes written in the real on-disk formats.

Nothing here touches the network: the download switch is checked by replacing
torchvision's downloader with a stand-in.
"""

import pickle
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from dleff.data import online
from dleff.data.datasets import BatchedTensorImages, DiskImages, dataset_variants, iterate, make_loader
from dleff.data.images import read_images
from dleff.data.online import CIFAR10Unverified, cifar10, tiny_imagenet_files

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10(root, per_batch=4):
    """`cifar-10-batches-py/` as the official archive has it: Python-2 pickles of uint8 rows.

    Each row is 3072 bytes: the 1024 red values of the 32x32 image row by row,
    then the green ones, then the blue ones. Returns the train images as (N, 32, 32, 3).
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train = []
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for number, name in enumerate(names):
        pictures = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        rows = pictures.transpose(0, 3, 1, 2).reshape(per_batch, 3072)
        labels = [(number + i) % 10 for i in range(per_batch)]
        batch = {"batch_label": f"batch {name}", "labels": labels, "data": rows,
                 "filenames": [f"{name}_{i}.png" for i in range(per_batch)]}
        with open(folder / name, "wb") as out:
            pickle.dump(batch, out, protocol=2)
        if name != "test_batch":
            train.append(pictures)
    meta = {"num_cases_per_batch": per_batch, "label_names": CIFAR_CLASSES, "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as out:
        pickle.dump(meta, out, protocol=2)
    return np.concatenate(train)


def test_cifar10_reads_the_pickled_batches_in_their_real_layout(tmp_path):
    pictures = write_cifar10(tmp_path)
    data = cifar10(tmp_path, verify_checksums=False)
    assert data.images.shape == (20, 3, 32, 32) and data.images.dtype == torch.float32
    assert data.classes == tuple(CIFAR_CLASSES)
    assert data.labels[:4].tolist() == [0, 1, 2, 3] and data.labels[4:8].tolist() == [1, 2, 3, 4]
    # channel 2 (blue), row 5, column 7 of picture 6 lands where an (N, C, H, W) reader expects it
    assert data.images[6, 2, 5, 7] == pictures[6, 5, 7, 2] / 255
    assert torch.equal(data.images, torch.from_numpy(pictures).permute(0, 3, 1, 2).float() / 255)
    test = cifar10(tmp_path, train=False, verify_checksums=False)
    assert len(test) == 4


def test_cifar10_images_feed_the_dataset_variants(tmp_path):
    write_cifar10(tmp_path)
    data = cifar10(tmp_path, verify_checksums=False)
    assert iterate(make_loader(BatchedTensorImages(data.images, data.labels), batch_size=8)) == 3


def test_the_stock_loader_still_checks_checksums_and_says_what_to_do(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(RuntimeError, match="verify_checksums=False"):
        cifar10(tmp_path)
    assert issubclass(CIFAR10Unverified, online.CIFAR10)


def test_a_cifar10_folder_missing_a_batch_is_reported(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(RuntimeError, match=r"cifar-10-batches-py.*incomplete"):
        cifar10(tmp_path, verify_checksums=False)


def test_cifar10_downloads_only_when_asked(tmp_path, monkeypatch):
    calls = []

    def fake_download(url, download_root, filename=None, md5=None, **kwargs):
        calls.append((url, md5))
        raise ConnectionError("offline in tests")

    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", fake_download)
    with pytest.raises(FileNotFoundError, match="download=True"):
        cifar10(tmp_path)
    assert calls == []
    with pytest.raises(ConnectionError):
        cifar10(tmp_path, download=True)
    assert calls == [(online.CIFAR10.url, online.CIFAR10.tgz_md5)]


# ---------------------------------------------------------------- Tiny-ImageNet

WNIDS = ["n02124075", "n01443537", "n09193705"]  # as in the real wnids.txt: not sorted


def jpeg(path, colour, gray=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((64, 64, 3), colour, dtype=np.uint8)
    image = Image.fromarray(pixels)
    (image.convert("L") if gray else image).save(path, format="JPEG")


def write_tiny_imagenet(root, per_class=3, val_per_class=2):
    """A `tiny-imagenet-200/` tree with the real file names, annotation files and a grayscale image."""
    base = root / "tiny-imagenet-200"
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (base / "words.txt").write_text("".join(f"{w}\tthing {i}\n" for i, w in enumerate(WNIDS)))
    for number, wnid in enumerate(WNIDS):
        boxes = []
        for k in range(per_class):
            jpeg(base / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", 40 * number + k, gray=(k == 1))
            boxes.append(f"{wnid}_{k}.JPEG\t0\t0\t63\t63")
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("\n".join(boxes) + "\n")
    annotations = []
    for k in range(val_per_class * len(WNIDS)):
        wnid = WNIDS[k % len(WNIDS)]
        jpeg(base / "val" / "images" / f"val_{k}.JPEG", 200)
        annotations.append(f"val_{k}.JPEG\t{wnid}\t1\t2\t60\t61")
    (base / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    jpeg(base / "test" / "images" / "test_0.JPEG", 10)
    return base


def test_tiny_imagenet_train_files_are_labelled_by_sorted_wnid(tmp_path):
    write_tiny_imagenet(tmp_path)
    files = tiny_imagenet_files(tmp_path)
    assert files.classes == tuple(sorted(WNIDS))
    assert len(files) == 9
    for path, label in zip(files.paths, files.labels.tolist()):
        assert path.parent.parent.name == files.classes[label] and path.suffix == ".JPEG"


def test_tiny_imagenet_val_labels_come_from_the_annotation_file(tmp_path):
    write_tiny_imagenet(tmp_path)
    files = tiny_imagenet_files(tmp_path, split="val")
    assert len(files) == 6
    label_of = {f"val_{k}.JPEG": sorted(WNIDS).index(WNIDS[k % 3]) for k in range(6)}
    assert {path.name: label for path, label in zip(files.paths, files.labels.tolist())} == label_of


def test_grayscale_tiny_imagenet_images_are_read_as_rgb(tmp_path):
    write_tiny_imagenet(tmp_path)
    files = tiny_imagenet_files(tmp_path)
    gray_ones = [i for i, path in enumerate(files.paths) if path.stem.endswith("_1")]
    dataset = DiskImages(files, channels=3)
    image, _ = dataset[gray_ones[0]]
    assert image.shape == (3, 64, 64)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_tiny_imagenet_files_feed_the_four_variants(tmp_path):
    write_tiny_imagenet(tmp_path)
    files = tiny_imagenet_files(tmp_path)
    variants = dataset_variants(files, read_images(files, channels=3))
    batches = {name: next(iter(make_loader(dataset, batch_size=4))) for name, dataset in variants.items()}
    for images, labels in batches.values():
        assert images.shape == (4, 3, 64, 64)
        assert torch.equal(images, batches["disk"][0]) and torch.equal(labels, batches["disk"][1])


def test_tiny_imagenet_missing_says_how_to_download(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("must not download without download=True")

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", no_network)
    with pytest.raises(FileNotFoundError, match=r"tiny-imagenet-200.*download=True"):
        tiny_imagenet_files(tmp_path)
    with pytest.raises(ValueError, match="'train' or 'val'"):
        tiny_imagenet_files(tmp_path, split="test")


def test_tiny_imagenet_download_fetches_the_official_archive_and_reads_it(tmp_path, monkeypatch):
    source = tmp_path / "made"
    write_tiny_imagenet(source)
    archive = tmp_path / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(archive, "w") as packed:
        for path in sorted((source / "tiny-imagenet-200").rglob("*")):
            packed.write(path, path.relative_to(source))
    calls = []

    def fake_download(url, download_root, md5=None, **kwargs):
        calls.append((url, md5))
        with zipfile.ZipFile(archive) as packed:
            packed.extractall(download_root)

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", fake_download)
    files = tiny_imagenet_files(tmp_path / "fresh", download=True)
    assert calls == [(online.TINY_IMAGENET_URL, online.TINY_IMAGENET_MD5)]
    assert len(files) == 9
    tiny_imagenet_files(tmp_path / "fresh", download=True)
    assert len(calls) == 1  # already there: no second download


def test_an_incomplete_tiny_imagenet_copy_is_reported_not_skipped(tmp_path):
    base = write_tiny_imagenet(tmp_path)
    (base / "val" / "images" / "val_4.JPEG").unlink()
    with pytest.raises(FileNotFoundError, match=r"val_4.JPEG.*download it again"):
        tiny_imagenet_files(tmp_path, split="val")
    for path in (base / "train" / WNIDS[2] / "images").iterdir():
        path.unlink()
    with pytest.raises(FileNotFoundError, match=rf"{WNIDS[2]}.*delete it and download it again"):
        tiny_imagenet_files(tmp_path)


def test_a_bad_annotation_line_names_the_file_and_line(tmp_path):
    base = write_tiny_imagenet(tmp_path)
    with open(base / "val" / "val_annotations.txt", "a") as annotations:
        annotations.write("val_99.JPEG\tn00000000\t0\t0\t1\t1\n")
    with pytest.raises(ValueError, match=r"val_annotations.txt, line 7"):
        tiny_imagenet_files(tmp_path, split="val")
