"""The papers' setting (issue 26): params/cifar10.yaml passes `memunlearn check` unchanged, and runs the main
stages on its synthetic CIFAR-shaped stand-in at tiny size (sizes, epochs, K and the model overridden)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from memunlearn.config import with_preset
from memunlearn.data import DATASETS
from memunlearn.data.prepare import PrepareConfig, carve, prepare
from memunlearn.data.splits import ImageSplit, load_split
from memunlearn.memorization.housekeeping import current_key
from memunlearn.memorization.store import key_for
from memunlearn.memorization.exact import ExactConfig
from memunlearn.params import check_params
from memunlearn.training.recipe import recipe_for, resolved

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "params/cifar10.yaml"
MAIN_STAGES = ["prepare", "train", "memorize", "proxies", "partition", "oracle", "unlearn", "evaluate"]
TINY = {  # the preset at tiny size: what a 2-core CPU trains in seconds; every recipe key of the preset kept
    "data": {"dataset": "cifar10_synthetic", "max_train": 400, "max_test": 100},
    "train": {"model": "small_cnn", "epochs": 2, "device": "cpu", "precision": "fp32"},
    "train_records": {"curvature_estimators": ["sign_gradient"]},
    "memorize": {"num_models": 4, "max_models": 4, "round_models": 2, "recipe": {"epochs": 2, "batch_size": 64,
                                                                                  "lr_milestones": [1]}},
    "proxies": {"top_n": 20, "holdout_max_epochs": 1},
    "partition": {"size": 30},
    "methods": {"neggrad_plus": {"batch_size": 64}},
    "unlearn": {"subset_params": {"low": {"epochs": 1}, "mid": {"epochs": 1}, "high": {"epochs": 1}}},
    "evaluate": {"mia_max_per_class": 50},
}


def preset_params(*updates: dict) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for update in (yaml.safe_load(PRESET.read_text()), *updates):
        params = with_preset(params, update)
    return params


def test_the_preset_passes_check_unchanged():
    params = preset_params()
    assert check_params(params, {}) == []
    assert (params["data"]["dataset"], params["train"]["model"], params["memorize"]["num_models"],
            params["partition"]["size"]) == ("cifar10", "resnet18_cifar", 400, 3000)
    original, subset = recipe_for(params, "original"), recipe_for(params, "subset")
    assert (original.lr, original.batch_size, original.lr_schedule, original.augment.crop_padding,
            original.augment.flip) == (0.1, 256, "cosine", 4, True)
    assert (subset.epochs, subset.lr, subset.weight_decay, subset.lr_milestones, subset.batch_size,
            subset.augment.on) == (30, 0.01, 5e-4, (15, 20, 25), 512, False)
    assert recipe_for(params, "oracle") == original


def test_the_synthetic_stand_in_is_cifar_shaped_and_learnable_by_class():
    raw = DATASETS.get("cifar10_synthetic")(Path("unused"), 0, 0.2)
    assert raw.train.images.shape == (5000, 3, 32, 32) and raw.train.images.dtype == torch.uint8
    assert raw.test.images.shape == (1000, 3, 32, 32) and raw.num_classes == 10
    means = torch.stack([raw.train.images[raw.train.labels == c].float().mean(0) for c in range(10)])  # (10, 3, 32, 32)
    nearest = ((raw.test.images.float()[:, None] - means[None]) ** 2).flatten(2).sum(2).argmin(1)  # (M,)
    assert (nearest == raw.test.labels).float().mean() > 0.95  # classes are told apart by their pattern
    again = DATASETS.get("cifar10_synthetic")(Path("unused"), 7, 0.5)
    assert torch.equal(again.train.images, raw.train.images)  # fixed by its own seed


def test_the_per_class_carve_takes_the_fraction_of_every_class():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 9)
    split = ImageSplit(torch.zeros(len(labels), 1, 2, 2, dtype=torch.uint8), labels, torch.arange(len(labels)))
    held, rest = carve(split, 0.1, seed=3, per_class=True)
    assert torch.bincount(held.labels, minlength=3).tolist() == [5, 3, 0]  # int(0.1 n_c), the RUM code's count
    assert sorted([*held.example_ids.tolist(), *rest.example_ids.tolist()]) == list(range(len(labels)))
    again, _ = carve(split, 0.1, seed=3, per_class=True)
    assert torch.equal(again.example_ids, held.example_ids)
    plain, _ = carve(split, 0.1, seed=3)  # the default: a fraction of the whole split, as before
    assert len(plain) == 9


def test_the_carve_the_preset_asks_for_leaves_the_reference_counts(tmp_path):
    config = PrepareConfig(dataset="cifar10_synthetic", validation_fraction=0.1, validation_source="train",
                           validation_per_class=True)
    data = prepare(config, tmp_path)
    assert torch.bincount(data.validation.labels).tolist() == [50] * 10 and len(data.train) == 4500


@pytest.mark.e2e
def test_the_preset_runs_the_main_stages_on_the_synthetic_stand_in(tmp_path):
    """Each main stage's script, in order, in one process (a process per stage would cost most of a minute in
    imports alone), on the preset with TINY over it; the store is keyed by the subset models' own recipe."""
    params = preset_params(TINY)
    assert check_params(params, {}) == []
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    driver = ("import runpy, sys\n"
              f"sys.path.insert(0, {str(ROOT / 'stages')!r})\n"
              f"for name in {MAIN_STAGES!r}:\n"
              f"    sys.argv = [{str(ROOT / 'stages')!r} + '/' + name + '.py']\n"
              "    runpy.run_path(sys.argv[0], run_name='__main__')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlruns.db",
           "MEMUNLEARN_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", driver], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"main stages of the tiny preset run: {seconds:.1f} s")

    prepared = tmp_path / "data/prepared"
    train, validation = load_split(prepared / "train.npz"), load_split(prepared / "val.npz")
    counts = torch.bincount(train.labels, minlength=10) + torch.bincount(validation.labels, minlength=10)
    assert torch.bincount(validation.labels, minlength=10).tolist() == (counts // 10).tolist()  # 10% per class
    assert train.images.shape[1:] == (3, 32, 32)
    metrics = {s: json.loads((tmp_path / f"metrics/{s}.json").read_text())
               for s in ("train", "memorize", "partition", "oracle", "unlearn", "evaluate")}
    assert metrics["memorize"]["num_models"] == 4
    # the subset models are stored under the key of their own recipe (memorize.recipe), not the original's
    key = current_key(params, prepared)
    assert [p.name for p in (tmp_path / "data/memorize_store").iterdir()] == [key]
    test = load_split(prepared / "test.npz")
    original = resolved(recipe_for(params, "original"), "cpu")
    assert key != key_for(train, test, original, ExactConfig(), torch.device("cpu"))
