"""A tiny project for the deletion-request tests: prepared embedded digits, an original model trained for two
epochs and registered in a SQLite MLflow store as the train stage registers it (D and T logged, tagged with its
architecture, @production claimed). Built with the library, no DVC: the requests read only these files."""
from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from memunlearn.config import from_params
from memunlearn.data import PrepareConfig, prepare, save_info, save_split
from memunlearn.data.prepare import VALIDATION_FILE
from memunlearn.models import build_model
from memunlearn.seeding import generator
from memunlearn.tracking import ModelRecord, StageRecord, TrackingTarget, claim_alias, record_stage, store_location
from memunlearn.training import TrainConfig, fit, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "data": {"max_train": 300, "max_test": 300, "noise_fraction": 0.0},
    "train": {"epochs": 2, "lr_milestones": [], "device": "cpu"},
    "methods": {"neggrad_plus": {"epochs": 1}, "finetune": {"epochs": 1}},
    "requests": {"device": "cpu", "audit_margin": 0.5, "max_utility_drop": 1.0, "max_overforgetting": 1.0},
}


def _merge(base: dict, update: dict) -> dict:
    for key, value in update.items():
        base[key] = _merge(base.get(key) or {}, value) if isinstance(value, dict) else value
    return base


def set_params(root: Path, update: dict) -> None:
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(_merge(yaml.safe_load(path.read_text()), update), sort_keys=False))


def build(root: Path, update: dict | None = None) -> Path:
    """The project in ``root``: params.yaml (the repository's with TINY and ``update``), data/prepared,
    data/train/model.pt, the MLflow store with the original registered and @production."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    set_params(root, _merge(yaml.safe_load(yaml.safe_dump(TINY)), update or {}))
    params = yaml.safe_load((root / "params.yaml").read_text())
    data = prepare(from_params(PrepareConfig, params["data"], "data"), root / "data/raw")
    prepared = root / "data/prepared"
    save_split(data.train, prepared / "train.npz")
    save_split(data.test, prepared / "test.npz")
    save_split(data.validation, prepared / VALIDATION_FILE)
    save_info(data.info, prepared / "meta.json")
    recipe = from_params(TrainConfig, params["train"], "train")
    model = build_model(recipe.model, data.info.in_channels, data.info.num_classes, data.info.image_size, recipe.seed)
    fit(model, data.train, data.info, recipe, generator(recipe.seed, "train_order"), "cpu")
    save_checkpoint(model, recipe.model, data.info, root / "data/train/model.pt")
    uri, artifacts = store_location(root)
    target = TrackingTarget(uri, artifacts, tags={"git_commit": "test"})
    record_stage(StageRecord("train", models={"original_model": ModelRecord(model, "original", data.info,
                                                                            {"model": recipe.model})},
                             datasets={"D": data.train, "T": data.test}), target)
    claim_alias(target, "original")
    return root
