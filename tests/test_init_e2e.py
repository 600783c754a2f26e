"""A locally saved checkpoint as the starting model of a real DVC run (train.init, docs/params.md "Start from your
own model"): the train stage loads it instead of training, the pipeline runs through proxies, memorize,
partition, oracle, unlearn and evaluate, the proxies that need training records are skipped with the reason, and
the checkpoint's content, not its name, decides whether train reruns."""
from __future__ import annotations

import json

import pytest
import torch

from memunlearn.data import load_info
from memunlearn.models import build_model
from memunlearn.training import save_checkpoint

from e2e_project import TINY, _merge, dvc, set_params, tiny_project

pytestmark = pytest.mark.e2e

CHECKPOINT = "models/elsewhere.pt"  # relative to the project's root


def save_elsewhere(root, seed: int) -> dict:
    """A small CNN with seed-``seed`` weights, saved as the project's checkpoint at CHECKPOINT; its state."""
    info = load_info(root / "data/prepared/meta.json")
    model = build_model("small_cnn", info.in_channels, info.num_classes, info.image_size, seed=seed)
    (root / "models").mkdir(exist_ok=True)
    save_checkpoint(model, "small_cnn", info, root / CHECKPOINT)
    return model.state_dict()


def trained_state(root) -> dict:
    return torch.load(root / "data/train/model.pt", weights_only=True)["state_dict"]


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_saved_checkpoint_is_the_original_of_a_run(tmp_path):
    """Loaded weights exactly; the run goes on through evaluate; the sources stage's fingerprint keeps train cached
    until the checkpoint's bytes change; the registered original loads back by its models:/ URI."""
    params = _merge(json.loads(json.dumps(TINY)), {"data": {"max_train": 300, "max_test": 100},
                                                   "train": {"init": CHECKPOINT}, "memorize": {"num_models": 2},
                                                   "proxies": {"holdout_max_epochs": 1}, "partition": {"size": 20}})
    with tiny_project(tmp_path, params) as root:
        dvc(root, "repro", "prepare")
        saved = save_elsewhere(root, seed=7)
        out = dvc(root, "repro", "evaluate").stdout
        assert same(trained_state(root), saved)  # loaded, not trained: the saved weights exactly
        train = json.loads((root / "metrics/train.json").read_text())
        assert CHECKPOINT in train["init"] and "memunlearn checkpoint" in train["init"]
        assert 0 <= train["test_acc"] <= 1 and len(train["init_sha256"]) == 64
        assert not (root / "data/train/learning_events.parquet").exists()
        cost = json.loads((root / "data/proxies/cost.json").read_text())
        assert {"confidence", "loss_curvature"} <= set(cost["skipped"]) and "final_loss" in cost["seconds"]
        assert "proxies: confidence skipped: needs records of the original's training" in out
        assert (root / "results/evaluation.csv").exists() and (root / "data/oracle/model.pt").exists()

        dvc(root, "repro", "sources")  # the same bytes: train stays up to date
        assert json.loads(dvc(root, "status", "train", "--json").stdout) == {}
        save_elsewhere(root, seed=8)  # a new checkpoint at the same path makes train stale
        dvc(root, "repro", "sources")
        stale = json.loads(dvc(root, "status", "train", "--json").stdout)
        assert stale["train"] == [{"changed deps": {"data/init_source.json": "modified"}}]

        set_params(root, {"train": {"init": "models:/memunlearn-original/1"}})  # the original the run registered
        assert "Running stage 'train'" in dvc(root, "repro", "train").stdout
        assert same(trained_state(root), saved)
        assert json.loads((root / "metrics/train.json").read_text())["init_version"] == "1"
