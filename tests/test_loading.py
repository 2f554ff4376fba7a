"""The measuring helpers of lesson 02 and its benchmark (`dleff.loading`): their behaviour, not their timings."""

import pickle

import pytest
import torch

from dleff import loading
from dleff.data.datasets import TensorImages, dataset_variants
from dleff.data.images import image_folder, list_image_files


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return list_image_files(image_folder("mnist", limit=120, cache_dir=tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def variants(files):
    return dataset_variants(files)


def test_every_variant_gives_the_first_ones_batches(variants):
    table = loading.compare_batches(variants, batch_size=16)
    assert list(table.index) == ["disk", "array", "tensor", "tensor_batched"]
    assert (table["batches"] == 8).all()
    assert table["same_images"].all() and table["same_labels"].all()
    assert (table["max_pixel_difference"] == 0).all()


def test_compare_batches_notices_a_different_dataset(variants):
    shifted = TensorImages(variants["tensor"].images + 0.5, variants["tensor"].labels)
    table = loading.compare_batches({"tensor": variants["tensor"], "shifted": shifted})
    assert not table.loc["shifted", "same_images"] and table.loc["shifted", "same_labels"]
    assert table.loc["shifted", "max_pixel_difference"] == pytest.approx(0.5)


def test_batched_fetching_indexes_once_per_batch_itemwise_once_per_item(variants):
    assert loading.indexing_calls(variants["tensor"], batch_size=16) == 16
    assert loading.indexing_calls(variants["tensor_batched"], batch_size=16) == 1
    # the dataset itself is left unwrapped
    assert isinstance(variants["tensor_batched"].images, torch.Tensor)


def test_counting_tensor_counts_indexing_only():
    counted = loading.CountingTensor(torch.arange(10))
    assert len(counted) == 10 and counted.shape == (10,)
    assert counted[3] == 3 and counted.index_select(0, torch.tensor([1, 2])).tolist() == [1, 2]
    assert counted.calls == 2
    assert pickle.loads(pickle.dumps(counted)).calls == 2  # worker processes receive it pickled


def test_spread_keeps_every_class(files):
    chosen = loading.spread(files, 30)
    assert len(chosen.paths) == 30
    assert set(chosen.labels.tolist()) == set(files.labels.tolist())
    assert loading.spread(files, 10_000) is files
    with pytest.raises(ValueError, match="positive"):
        loading.spread(files, 0)


def test_time_epochs_reports_items_per_second(variants):
    table = loading.time_epochs({"tensor": variants["tensor"]}, min_run_time=0.01, memory=False)
    assert table.loc["tensor", "items_per_s"] == pytest.approx(120 / table.loc["tensor", "median_s"])


def test_bandwidth_fraction_is_the_ratio_of_the_two_rates(variants):
    images, labels = variants["tensor"].images, variants["tensor"].labels
    table, fraction = loading.measure_bandwidth(images, labels, batch_size=32, min_run_time=0.01)
    assert list(table.index) == ["memory_copy", "batched_fetch"]
    rates = table["gb_per_s"]
    assert fraction == pytest.approx(rates["batched_fetch"] / rates["memory_copy"])
    by_size = loading.bandwidth_by_batch_size(images, labels, (16, 64), min_run_time=0.01)
    assert list(by_size.index) == [16, 64] and (by_size["fraction_of_copy"] > 0).all()


def test_workers_are_measured_against_zero_workers(variants):
    table = loading.measure_workers({"tensor": variants["tensor"]}, [0, 1], min_run_time=0.01)
    assert table["num_workers"].tolist() == [0, 1]
    assert table["relative"].iloc[0] == 1
    with pytest.raises(ValueError, match="start with 0"):
        loading.measure_workers({"tensor": variants["tensor"]}, [1, 2])


def test_pinned_transfer_needs_cuda(variants):
    with pytest.raises(ValueError, match="not one"):
        loading.measure_transfer(variants["tensor"], "cpu")


def test_lesson_sources_refuse_what_they_do_not_know():
    with pytest.raises(ValueError):
        loading.image_files("imagenet-21k")
