"""prepare: the embedded default dataset, stable ids, planted noise, download errors."""
import pytest
import torch

from memunlearn.data import PrepareConfig, flip_labels, load_split, prepare, save_split
from memunlearn.data.datasets import _download


@pytest.fixture(scope="module")
def default_data(tmp_path_factory):
    return prepare(PrepareConfig(noise_fraction=0.05, noise_seed=1), tmp_path_factory.mktemp("raw"))


def test_embedded_mnist_is_real_and_offline(default_data):
    train, test, info = default_data.train, default_data.test, default_data.info
    assert (len(train), len(test)) == (4000, 1000)
    assert train.images.shape[1:] == (1, 28, 28) and train.images.dtype == torch.uint8
    assert info.num_classes == 10 and set(train.labels.tolist()) == set(range(10))
    # ids are unique across train and test
    all_ids = torch.cat([train.example_ids, test.example_ids])
    assert len(all_ids.unique()) == 5000


def test_ids_are_stable_across_runs(default_data, tmp_path):
    again = prepare(PrepareConfig(noise_fraction=0.05, noise_seed=1), tmp_path)
    assert torch.equal(again.train.example_ids, default_data.train.example_ids)
    assert torch.equal(again.train.labels, default_data.train.labels)


def test_planted_noise_flips_exactly_the_recorded_examples(default_data):
    clean = prepare(PrepareConfig(noise_fraction=0.0), "unused")
    flipped = default_data.flipped
    assert len(flipped) == 200
    changed = clean.train.example_ids[clean.train.labels != default_data.train.labels]
    assert set(changed.tolist()) == set(flipped["example_id"])
    assert (flipped["clean_label"] != flipped["noisy_label"]).all()


def test_subsampling_keeps_ids(tmp_path):
    small = prepare(PrepareConfig(max_train=300, max_test=50), tmp_path)
    full = prepare(PrepareConfig(), tmp_path)
    assert (len(small.train), len(small.test)) == (300, 50)
    assert set(small.train.example_ids.tolist()) <= set(full.train.example_ids.tolist())


def test_split_round_trips_through_disk(default_data, tmp_path):
    save_split(default_data.test, tmp_path / "test.npz")
    loaded = load_split(tmp_path / "test.npz")
    assert torch.equal(loaded.images, default_data.test.images)
    assert torch.equal(loaded.example_ids, default_data.test.example_ids)


def test_missing_split_names_the_stage_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"test.npz is missing; run `dvc repro prepare` first"):
        load_split(tmp_path / "test.npz")


def test_download_failure_is_one_clear_line(tmp_path):
    def offline(root, download, **kwargs):
        raise OSError("network is unreachable")

    with pytest.raises(RuntimeError, match=r"could not download CIFAR10 into .*network is unreachable.*mnist_embedded"):
        _download(offline, tmp_path, "CIFAR10", train=True)


def test_flip_labels_zero_fraction_is_identity(default_data):
    same, table = flip_labels(default_data.test, 0.0, 10, seed=0)
    assert torch.equal(same.labels, default_data.test.labels) and table.empty
