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
    for count in (1, 50, 119):  # 50 of 120: every second file, and no more than 50
        assert len(loading.spread(files, count).paths) == count
    assert loading.spread(files, 50).paths == files.paths[0:100:2]
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
    # GB/s: bytes read plus written (twice the tensors' bytes) per median second, in units of 1e9
    assert rates["memory_copy"] == pytest.approx(2 * images.nbytes / table.loc["memory_copy", "median_s"] / 1e9)
    assert rates["batched_fetch"] == pytest.approx(
        2 * (images.nbytes + labels.nbytes) / table.loc["batched_fetch", "median_s"] / 1e9)
    assert (table["threads"] == 1).all()


def test_bandwidth_by_batch_size_turns_medians_into_rates(variants, monkeypatch):
    images, labels = variants["tensor"].images, variants["tensor"].labels
    asked = {}

    def known_medians(functions, min_run_time):
        asked.update(names=list(functions), min_run_time=min_run_time, threads=torch.get_num_threads())
        return {"copy": 0.5, 16: 2.0, 64: 1.0, 256: 0.8}

    monkeypatch.setattr(loading, "_interleaved_medians", known_medians)
    table = loading.bandwidth_by_batch_size(images, labels, min_run_time=0.1)
    assert asked == {"names": ["copy", 16, 64, 256], "min_run_time": pytest.approx(0.4), "threads": 1}
    copy_rate = 2 * images.nbytes / 0.5 / 1e9
    fetched = 2 * (images.nbytes + labels.nbytes)
    assert list(table.index) == [16, 64, 256]
    assert table["fetch_gb_per_s"].tolist() == pytest.approx([fetched / m / 1e9 for m in (2.0, 1.0, 0.8)])
    assert table["copy_gb_per_s"].tolist() == pytest.approx([copy_rate] * 3)
    assert table["fraction_of_copy"].tolist() == pytest.approx((table["fetch_gb_per_s"] / copy_rate).tolist())


class FakeClock:
    """time.perf_counter that moves only when a function under test says how long it took."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def spend(self, seconds):
        self.now += seconds


def test_interleaved_medians_time_each_function_in_turns(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(loading.time, "perf_counter", clock)
    calls = []
    durations = iter([0.0, 0.0] + [1.0, 3.0, 1.0, 3.0, 9.0, 3.0] * 2)  # warm-ups, then rounds (a, b)

    def timed(name):
        def run():
            calls.append(name)
            clock.spend(next(durations))
        return run

    medians = loading._interleaved_medians({"a": timed("a"), "b": timed("b")}, min_run_time=0.0, min_rounds=5)
    assert calls[:6] == ["a", "b", "a", "b", "a", "b"]  # one warm-up each, then turns
    assert medians == {"a": 1.0, "b": 3.0}


def test_cores_delivered_is_cores_times_alone_over_together(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(loading.time, "perf_counter", clock)
    monkeypatch.setattr(loading, "cpu_cores", lambda: 4)
    monkeypatch.setattr(loading, "_spin", lambda _=None: 2.0)  # one busy loop alone: 2 s

    class HalfTheCoresPool:
        """Four loops at once take 4 s: as if two cores were free."""

        def __init__(self, processes):
            assert processes == 4

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, fn, items):
            clock.spend(4.0)
            return [2.0 for _ in items]

    monkeypatch.setattr(loading.multiprocessing, "Pool", HalfTheCoresPool)
    assert loading.cores_delivered() == pytest.approx(4 * 2.0 / 4.0)


def test_workers_are_measured_against_zero_workers(variants):
    table = loading.measure_workers({"tensor": variants["tensor"]}, [0, 1], min_run_time=0.01)
    assert table["num_workers"].tolist() == [0, 1]
    assert table["relative"].tolist() == pytest.approx((table["median_s"] / table["median_s"].iloc[0]).tolist())
    assert table["items_per_s"].tolist() == pytest.approx((120 / table["median_s"]).tolist())
    with pytest.raises(ValueError, match="start with 0"):
        loading.measure_workers({"tensor": variants["tensor"]}, [1, 2])


def test_pinned_transfer_needs_cuda(variants):
    with pytest.raises(ValueError, match="not one"):
        loading.measure_transfer(variants["tensor"], "cpu")


def test_lesson_sources_refuse_what_they_do_not_know():
    with pytest.raises(ValueError):
        loading.image_files("imagenet-21k")
