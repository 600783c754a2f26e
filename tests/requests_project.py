"""A tiny project for the deletion-request tests: the repository's params.yaml with TINY's settings, prepared
embedded digits and an original trained for two epochs, registered in a SQLite MLflow store with @production
(``memunlearn.requests.bootstrap``, no DVC: the requests read only these files)."""
from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from memunlearn.requests.bootstrap import bootstrap
from memunlearn.tracking import TrackingTarget, store_location

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
    """The project in ``root``: params.yaml, data/prepared, data/train/model.pt, the MLflow store."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    set_params(root, _merge(yaml.safe_load(yaml.safe_dump(TINY)), update or {}))
    uri, artifacts = store_location(root)
    bootstrap(root, yaml.safe_load((root / "params.yaml").read_text()), TrackingTarget(uri, artifacts))
    return root
