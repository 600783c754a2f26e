"""The per-model store: grow K without retraining, resume after a crash, never read a corrupt file."""
import numpy as np
import pandas as pd
import pytest
import torch

from memunlearn.memorization import (ExactConfig, SubsetModelStore, dataset_fingerprint, memorization_scores,
                                     store_key, train_subset_models)
from memunlearn.training import TrainConfig

CPU = torch.device("cpu")
RECIPE = TrainConfig(model="small_cnn", epochs=2, batch_size=64, lr=0.05, device="cpu")


class Crash(Exception):
    pass


def _scores(result, train):
    return memorization_scores(result.runs, train.example_ids.numpy())


@pytest.fixture
def store(tmp_path, synthetic):
    train, test, _, _ = synthetic
    return SubsetModelStore(tmp_path / "store", store_key(dataset_fingerprint(train, test), RECIPE, 0.7, seed=0),
                            timings=tmp_path / "timings")


def test_growing_k_trains_only_the_new_models_and_shrinking_trains_none(synthetic, store):
    train, test, info, _ = synthetic
    first = train_subset_models(train, test, info, RECIPE, ExactConfig(num_models=3), CPU, store)
    assert (first.trained, first.reused) == ([0, 1, 2], [])
    grown = train_subset_models(train, test, info, RECIPE, ExactConfig(num_models=5), CPU, store)
    assert (grown.trained, grown.reused) == ([3, 4], [0, 1, 2])
    back = train_subset_models(train, test, info, RECIPE, ExactConfig(num_models=3), CPU, store)
    assert (back.trained, back.reused) == ([], [0, 1, 2])
    pd.testing.assert_frame_equal(_scores(back, train), _scores(first, train))
    assert store.indices() == [0, 1, 2, 3, 4]
    # a reused model keeps the cost of its training (the timings ledger): the exact method's price does not vanish
    assert back.runs[0].seconds == first.runs[0].seconds > 0


def test_the_same_models_trained_twice_give_the_same_store_bytes(synthetic, tmp_path):
    """Issue 28 item 4: no wall-clock time (nor zip timestamps) in a store file, so DVC hashes equal stores equally;
    the time goes to the ledger outside the store, where a reused model finds it."""
    train, test, info, _ = synthetic
    stores = [SubsetModelStore(tmp_path / name / "store", "k", timings=tmp_path / name / "timings")
              for name in ("clone_a", "clone_b")]
    runs = [train_subset_models(train, test, info, RECIPE, ExactConfig(num_models=2), CPU, s).runs for s in stores]
    assert runs[0][0].seconds != runs[1][0].seconds  # two trainings, two wall-clock times ...
    for k in (0, 1):
        assert stores[0].path(k).read_bytes() == stores[1].path(k).read_bytes()  # ... one set of bytes
        with np.load(stores[0].path(k)) as z:
            assert "seconds" not in z.files
        assert stores[0].load(k).seconds == runs[0][k].seconds  # the ledger's time, not the other clone's
    assert np.isnan(SubsetModelStore(tmp_path / "clone_a" / "store", "k").load(0).seconds)  # no ledger: unknown


def test_a_file_of_the_older_format_with_seconds_still_reads(synthetic, store):
    train, test, info, _ = synthetic
    first = train_subset_models(train, test, info, RECIPE, ExactConfig(num_models=1), CPU, store)
    with np.load(store.path(0)) as z:
        members = {k: z[k] for k in z.files}
    np.savez(store.path(0), **members, seconds=12.5)  # as the store wrote before issue 28
    store.ledger.unlink()
    again = train_subset_models(train, test, info, RECIPE, ExactConfig(num_models=1), CPU, store)
    assert (again.trained, again.reused) == ([], [0])
    assert again.runs[0].seconds == 12.5
    np.testing.assert_array_equal(again.runs[0].train_true_prob, first.runs[0].train_true_prob)


def test_an_interrupted_run_resumes_to_identical_scores(synthetic, store, tmp_path):
    train, test, info, _ = synthetic
    config = ExactConfig(num_models=4)

    def crash_after_two(run, reused):
        if run.index == 1:
            raise Crash  # like kill -9 after model 1 was saved

    with pytest.raises(Crash):
        train_subset_models(train, test, info, RECIPE, config, CPU, store, on_model=crash_after_two)
    assert store.indices() == [0, 1]
    resumed = train_subset_models(train, test, info, RECIPE, config, CPU, store)
    assert (resumed.trained, resumed.reused) == ([2, 3], [0, 1])

    fresh_store = SubsetModelStore(tmp_path / "fresh", "k")
    uninterrupted = train_subset_models(train, test, info, RECIPE, config, CPU, fresh_store)
    pd.testing.assert_frame_equal(_scores(resumed, train), _scores(uninterrupted, train))


@pytest.mark.parametrize("damage", ["truncate", "flip_bytes"])
def test_a_damaged_model_file_is_recomputed_not_read(synthetic, store, damage):
    train, test, info, _ = synthetic
    config = ExactConfig(num_models=2)
    first = train_subset_models(train, test, info, RECIPE, config, CPU, store)
    path = store.path(1)
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    else:  # same length, wrong content: only the checksum can tell
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["train_true_prob"] = arrays["train_true_prob"] + 0.5
        np.savez(path, **arrays)
    again = train_subset_models(train, test, info, RECIPE, config, CPU, store)
    assert (again.trained, again.reused) == ([1], [0])
    np.testing.assert_array_equal(again.runs[1].train_true_prob, first.runs[1].train_true_prob)


def test_the_key_changes_with_the_recipe_and_data_but_not_the_device(synthetic):
    train, test, _, _ = synthetic
    fingerprint = dataset_fingerprint(train, test)
    base = store_key(fingerprint, RECIPE, 0.7, 0)
    assert store_key(fingerprint, TrainConfig(**{**RECIPE.__dict__, "device": "cuda"}), 0.7, 0) == base
    assert store_key(fingerprint, TrainConfig(**{**RECIPE.__dict__, "epochs": 3}), 0.7, 0) != base
    assert store_key(fingerprint, RECIPE, 0.6, 0) != base
    assert store_key(fingerprint, RECIPE, 0.7, 1) != base
    assert store_key(dataset_fingerprint(test, train), RECIPE, 0.7, 0) != base


def test_local_processes_give_the_same_scores_as_one_process(synthetic, tmp_path):
    train, test, info, _ = synthetic
    one = train_subset_models(train, test, info, RECIPE, ExactConfig(num_models=4, threads_per_worker=1), CPU,
                              SubsetModelStore(tmp_path / "one", "k"))
    two = train_subset_models(train, test, info, RECIPE, ExactConfig(num_models=4, threads_per_worker=1), CPU,
                              SubsetModelStore(tmp_path / "two", "k"), workers=2)
    assert sorted(two.trained) == [0, 1, 2, 3]
    pd.testing.assert_frame_equal(_scores(one, train), _scores(two, train))
    for a, b in zip(one.runs, two.runs):
        np.testing.assert_allclose(a.train_true_prob, b.train_true_prob, rtol=0, atol=1e-5)


def test_editing_code_that_trains_subset_models_retrains_them_and_other_edits_do_not(synthetic, tmp_path):
    """Issue 12: the key covers the code. A copy of the package is edited; the store key follows its files."""
    import shutil

    from memunlearn.memorization.store import model_code_fingerprint
    from memunlearn.provenance import PACKAGE_ROOT

    train, test, info, _ = synthetic
    package = tmp_path / "memunlearn"
    shutil.copytree(PACKAGE_ROOT, package, ignore=shutil.ignore_patterns("__pycache__"))
    data = dataset_fingerprint(train, test)

    def run():
        key = store_key(data, RECIPE, 0.7, 0, code=model_code_fingerprint(package))
        result = train_subset_models(train, test, info, RECIPE, ExactConfig(num_models=2), CPU,
                                     SubsetModelStore(tmp_path / "store", key))
        return result.trained

    assert model_code_fingerprint(package) == model_code_fingerprint()  # the copy is the code in use
    assert run() == [0, 1]
    for unrelated in ("evaluation/tow.py", "unlearning/salun.py", "partition.py"):
        (package / unrelated).write_text((package / unrelated).read_text() + "\nEDITED = 1\n")
    (package / "training/loop.py").write_text((package / "training/loop.py").read_text() + "\n# a comment\n")
    assert run() == []
    for shaping in ("training/loop.py", "seeding.py", "data/splits.py", "modality/image/small_cnn.py"):
        edited = package / shaping
        original = edited.read_text()
        edited.write_text(original + "\nEDITED = 1\n")
        assert run() == [0, 1], shaping  # every model retrains under the new key
        edited.write_text(original)
    assert run() == []  # back to the first code: its models are still there
