"""The embedded image sources, the PNG cache, the four dataset variants and their loaders."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from dleff.data import images as image_data
from dleff.data.datasets import (
    ArrayImages,
    AugmentedDiskImages,
    BatchedTensorImages,
    DiskImages,
    TensorImages,
    dataset_variants,
    default_augmentation,
    iterate,
    make_loader,
    pass_through,
)
from dleff.data.images import (
    CorruptImageError,
    ImageData,
    fashion_mnist,
    fashion_mnist_installed,
    image_folder,
    list_image_files,
    load_images,
    mnist_subset,
    read_image,
    read_images,
    sklearn_digits,
    write_image_folder,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def mnist_files(tmp_path_factory):
    """200 MNIST digits written as PNG files once for this module."""
    root = image_folder("mnist", limit=200, cache_dir=tmp_path_factory.mktemp("cache"))
    return list_image_files(root)


@pytest.fixture(scope="module")
def variants(mnist_files):
    return dataset_variants(mnist_files)


# ---------------------------------------------------------------- sources


def test_mnist_subset_is_5000_real_digits_as_8bit_float_images():
    data = mnist_subset()
    assert data.images.shape == (5000, 1, 28, 28) and data.images.dtype == torch.float32
    assert data.images.min() == 0 and data.images.max() == 1
    assert torch.equal(data.images.mul(255).round().div(255), data.images)
    assert torch.bincount(data.labels).tolist() == [500] * 10
    assert data.classes == tuple("0123456789")


def test_a_limited_mnist_subset_still_holds_every_digit():
    data = mnist_subset(limit=100)
    assert len(data) == 100
    assert set(data.labels.tolist()) == set(range(10))


def test_three_channel_and_resized_copies_for_imagenet_backbones():
    gray = mnist_subset(limit=4)
    rgb = mnist_subset(limit=4, channels=3)
    assert rgb.images.shape == (4, 3, 28, 28)
    assert all(torch.equal(rgb.images[:, c], gray.images[:, 0]) for c in range(3))
    big = mnist_subset(limit=4, channels=3, size=64)
    assert big.images.shape == (4, 3, 64, 64)
    assert torch.equal(big.images.mul(255).round().div(255), big.images)


def test_sklearn_digits_spread_their_17_levels_over_0_to_1():
    data = sklearn_digits()
    assert data.images.shape == (1797, 1, 8, 8)
    assert data.images.max() == 1 and data.images.min() == 0
    assert len(torch.unique(data.images)) == 17


def test_unknown_source_and_bad_options_say_what_is_allowed():
    with pytest.raises(ValueError, match="mnist, digits, fashion-mnist"):
        load_images("imagenet")
    with pytest.raises(ValueError, match="channels must be 1"):
        mnist_subset(limit=2, channels=2)
    with pytest.raises(ValueError, match="limit"):
        mnist_subset(limit=0)


def test_cache_folder_comes_from_dleff_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("DLEFF_CACHE", str(tmp_path / "here"))
    assert image_data.default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("DLEFF_CACHE")
    assert image_data.default_cache_dir().parts[-2:] == (".cache", "dleff")


# ---------------------------------------------------------------- the PNG cache


def test_image_folder_writes_real_png_files_in_imagefolder_layout(mnist_files):
    root = mnist_files.root
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == list("0123456789")
    assert len(mnist_files) == 200
    for path, label in zip(mnist_files.paths, mnist_files.labels.tolist()):
        assert path.parent.name == str(label) and path.suffix == ".png"
    assert mnist_files.paths[0].read_bytes()[:8] == PNG_SIGNATURE


def test_png_files_hold_exactly_the_embedded_pixels(mnist_files):
    data = mnist_subset(limit=200)
    for path in mnist_files.paths[::20]:
        index = int(path.stem)  # files are named by their index in the source
        assert torch.equal(read_image(path), data.images[index])
        assert data.labels[index] == int(path.parent.name)


def test_image_folder_is_written_once_and_then_reused(tmp_path, monkeypatch):
    root = image_folder("digits", limit=30, cache_dir=tmp_path)
    stamps = {path: path.stat().st_mtime_ns for path in root.rglob("*.png")}

    def no_second_write(*args, **kwargs):
        raise AssertionError("the cache was written again")

    monkeypatch.setattr(image_data, "load_images", no_second_write)
    assert image_folder("digits", limit=30, cache_dir=tmp_path) == root
    assert {path: path.stat().st_mtime_ns for path in root.rglob("*.png")} == stamps


def test_an_interrupted_cache_is_written_again(tmp_path):
    root = image_folder("digits", limit=20, cache_dir=tmp_path)
    (root / image_data.COMPLETE_MARKER).unlink()  # as if the first write had stopped halfway
    next(root.rglob("*.png")).unlink()
    assert len(list_image_files(image_folder("digits", limit=20, cache_dir=tmp_path))) == 20


def test_a_cache_with_missing_files_is_reported_not_used(tmp_path):
    root = image_folder("digits", limit=20, cache_dir=tmp_path)
    next(root.rglob("*.png")).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{root}.*delete that folder"):
        image_folder("digits", limit=20, cache_dir=tmp_path)


def test_class_names_that_do_not_sort_in_label_order_keep_their_labels(tmp_path):
    pixels = torch.arange(3 * 4 * 4, dtype=torch.float32).reshape(3, 1, 4, 4).div(255)
    data = ImageData(pixels, torch.tensor([0, 1, 2]), ("T-shirt/top", "Bag", "Ankle boot"))
    files = list_image_files(write_image_folder(data, tmp_path / "fashion"))
    assert files.classes == ("0-T-shirt-top", "1-Bag", "2-Ankle boot")
    back = read_images(files)
    assert torch.equal(back.labels, data.labels) and torch.equal(back.images, data.images)


# ---------------------------------------------------------------- bad input


def test_a_missing_folder_names_the_path_and_how_to_write_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'nowhere'}.*image_folder"):
        list_image_files(tmp_path / "nowhere")


def test_an_empty_folder_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path} is empty"):
        list_image_files(tmp_path)
    (tmp_path / "cats").mkdir()
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'cats'} holds no images"):
        list_image_files(tmp_path)


def test_files_that_are_not_images_are_reported_not_skipped(tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "notes.txt").write_text("meow")
    with pytest.raises(ValueError, match="notes.txt"):
        list_image_files(tmp_path)
    (tmp_path / "cats" / "notes.txt").unlink()
    (tmp_path / "stray.png").write_bytes(PNG_SIGNATURE)
    with pytest.raises(ValueError, match="stray.png"):
        list_image_files(tmp_path)


@pytest.fixture
def folder_with_corrupt_image(tmp_path):
    root = write_image_folder(mnist_subset(limit=12), tmp_path / "digits")
    victim = sorted(root.rglob("*.png"))[5]
    victim.write_bytes(victim.read_bytes()[:40])  # a truncated download, say
    return root, victim


def test_a_corrupt_image_names_the_file_and_what_to_do(folder_with_corrupt_image):
    root, victim = folder_with_corrupt_image
    with pytest.raises(CorruptImageError, match=rf"{victim}.*replace or delete it"):
        read_image(victim)
    files = list_image_files(root)
    with pytest.raises(CorruptImageError, match=str(victim)):
        read_images(files)


def test_a_corrupt_image_stops_the_data_loader_instead_of_being_skipped(folder_with_corrupt_image):
    root, victim = folder_with_corrupt_image
    with pytest.raises(CorruptImageError, match=str(victim)):
        iterate(make_loader(DiskImages(list_image_files(root)), batch_size=4))


def test_a_file_deleted_after_listing_is_reported(tmp_path):
    root = write_image_folder(mnist_subset(limit=10), tmp_path / "digits")
    files = list_image_files(root)
    files.paths[1].unlink()
    with pytest.raises(FileNotFoundError, match=str(files.paths[1])):
        DiskImages(files)[1]


# ---------------------------------------------------------------- the four variants


def test_the_four_variants_give_the_same_values_for_the_same_indices(variants):
    assert list(variants) == ["disk", "array", "tensor", "tensor_batched"]
    for index in (0, 7, 123, 199):
        items = [dataset[index] for dataset in variants.values()]
        for image, label in items[1:]:
            assert torch.equal(image, items[0][0]) and torch.equal(label, items[0][1])
    indices = [5, 150, 3, 77]
    batch_images, batch_labels = variants["tensor_batched"].__getitems__(indices)
    for position, index in enumerate(indices):
        assert torch.equal(batch_images[position], variants["disk"][index][0])
        assert batch_labels[position] == variants["disk"][index][1]


def test_the_four_loaders_yield_the_same_batches(variants):
    epochs = {}
    for name, dataset in variants.items():
        loader = make_loader(dataset, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(3))
        epochs[name] = list(loader)
    reference = epochs["disk"]
    assert len(reference) == 13
    assert reference[0][0].shape == (16, 1, 28, 28) and reference[0][1].shape == (16,)
    for name, batches in epochs.items():
        for (images, labels), (ref_images, ref_labels) in zip(batches, reference):
            assert images.dtype == torch.float32 and labels.dtype == torch.int64, name
            assert torch.equal(images, ref_images) and torch.equal(labels, ref_labels), name


def test_make_loader_passes_ready_batches_through_and_collates_the_rest(variants):
    assert make_loader(variants["tensor_batched"]).collate_fn is pass_through
    assert make_loader(variants["tensor"]).collate_fn is not pass_through
    batch = ("already", "a batch")
    assert pass_through(batch) is batch


def test_make_loader_collates_subsets_of_either_kind(variants):
    # Subset has a __getitems__ of its own: a list of items over a plain dataset, a batch over a batched one.
    for name in ("tensor", "tensor_batched"):
        images, labels = next(iter(make_loader(Subset(variants[name], range(3, 40)), batch_size=8)))
        assert images.shape == (8, 1, 28, 28) and labels.shape == (8,), name
        assert torch.equal(images, variants["tensor"].images[3:11]), name


def test_batched_fetching_asks_the_dataset_once_per_batch(variants):
    calls = []

    class Counting(BatchedTensorImages):
        def __getitems__(self, indices):
            calls.append(list(indices))
            return super().__getitems__(indices)

        def __getitem__(self, i):
            raise AssertionError("a batched dataset should not be asked item by item")

    dataset = Counting(variants["tensor"].images, variants["tensor"].labels)
    assert iterate(make_loader(dataset, batch_size=64)) == 4
    assert [len(c) for c in calls] == [64, 64, 64, 8]


def test_iterate_runs_every_batch_of_every_epoch(variants):
    assert iterate(make_loader(variants["tensor"], batch_size=50), epochs=3) == 12


def test_array_variant_copies_each_item_and_tensor_variant_does_not(variants):
    array_image, _ = variants["array"][0]
    tensor_image, _ = variants["tensor"][0]
    assert not np.shares_memory(array_image.numpy(), variants["array"].images)
    assert tensor_image.data_ptr() == variants["tensor"].images.data_ptr()


def test_variants_pickle_for_spawned_worker_processes(variants, mnist_files):
    augmented = AugmentedDiskImages(mnist_files, default_augmentation(28))
    for dataset in [*variants.values(), augmented]:
        clone = pickle.loads(pickle.dumps(dataset))
        assert type(clone) is type(dataset) and len(clone) == len(dataset)


def test_disk_images_load_in_a_spawned_worker_as_on_macos_and_windows(variants):
    # spawn starts a fresh interpreter that must import the dataset class by name
    loader = make_loader(variants["disk"], batch_size=100, num_workers=1, multiprocessing_context="spawn")
    batches = list(loader)
    assert len(batches) == 2
    assert torch.equal(batches[0][0][3], variants["tensor"][3][0])


def test_augmented_images_are_decoded_and_randomly_changed(mnist_files):
    dataset = AugmentedDiskImages(mnist_files, default_augmentation(28))
    torch.manual_seed(0)
    first, label = dataset[3]
    second, _ = dataset[3]
    assert first.shape == (1, 28, 28) and first.dtype == torch.float32
    assert 0 <= first.min() and first.max() <= 1
    assert label == mnist_files.labels[3]
    assert not torch.equal(first, second)
    torch.manual_seed(0)
    assert torch.equal(dataset[3][0], first)


def test_the_variants_refuse_files_and_memory_of_different_lengths(mnist_files):
    with pytest.raises(ValueError, match="same folder"):
        dataset_variants(mnist_files, mnist_subset(limit=10))


def test_tensor_variants_accept_numpy_input():
    data = mnist_subset(limit=8)
    dataset = TensorImages(data.images.numpy(), data.labels.numpy())
    assert isinstance(dataset.images, torch.Tensor) and torch.equal(dataset[2][0], data.images[2])
    assert torch.equal(ArrayImages(data.images.numpy(), data.labels.numpy())[2][0], data.images[2])


# ---------------------------------------------------------------- Fashion-MNIST from Debian


def write_idx(path, array: np.ndarray) -> None:
    """An IDX file as Fashion-MNIST ships it: magic (0, 0, uint8 code 8, ndim), big-endian sizes, bytes."""
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as packed:
        packed.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_debian_fashion_mnist(tmp_path):
    folder = tmp_path / "usr-share-datasets-fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for split, count in (("train", 12), ("t10k", 5)):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28)))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", np.arange(count) % 10)
    return folder


def test_fashion_mnist_is_read_from_the_debian_package_files(fake_debian_fashion_mnist, tmp_path):
    assert fashion_mnist_installed(fake_debian_fashion_mnist)
    train = fashion_mnist(tmp_path / "data", debian_dir=fake_debian_fashion_mnist)
    assert train.images.shape == (12, 1, 28, 28) and train.labels.tolist() == [i % 10 for i in range(12)]
    assert train.classes[0] == "T-shirt/top"
    with gzip.open(fake_debian_fashion_mnist / "train-images-idx3-ubyte.gz") as packed:
        first_pixels = np.frombuffer(packed.read()[16:16 + 28 * 28], dtype=np.uint8)
    assert torch.equal(train.images[0, 0].flatten(), torch.from_numpy(first_pixels.copy()).float().div(255))
    assert (tmp_path / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    test = fashion_mnist(tmp_path / "data", train=False, channels=3, debian_dir=tmp_path / "gone")
    assert test.images.shape == (5, 3, 28, 28)


def test_fashion_mnist_absent_says_how_to_install_it(tmp_path):
    assert not fashion_mnist_installed(tmp_path)
    with pytest.raises(FileNotFoundError, match="apt install dataset-fashion-mnist.*download=True"):
        fashion_mnist(tmp_path / "data", debian_dir=tmp_path)


@pytest.mark.skipif(not fashion_mnist_installed(), reason="Debian's dataset-fashion-mnist is not installed")
def test_the_installed_debian_fashion_mnist_loads(tmp_path):
    test = fashion_mnist(tmp_path, train=False)
    assert test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(test.labels).tolist() == [1000] * 10


def test_an_image_folder_needs_every_class(tmp_path):
    data = ImageData(torch.zeros(2, 1, 4, 4), torch.tensor([0, 2]), ("a", "b", "c"))
    with pytest.raises(ValueError, match="no images of the classes b"):
        write_image_folder(data, tmp_path / "gappy")


def test_mnist_split_is_the_subset_cut_in_two():
    (train_images, train_labels), (valid_images, valid_labels) = image_data.mnist_split(30, 20)
    whole = mnist_subset(limit=50)
    assert torch.equal(torch.cat([train_images, valid_images]), whole.images)
    assert torch.equal(torch.cat([train_labels, valid_labels]), whole.labels)
    with pytest.raises(ValueError, match="5,000 images"):
        image_data.mnist_split(4000, 1001)
