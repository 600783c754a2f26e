"""Tiny projects for the deletion-request tests: the repository's params.yaml with TINY's settings, prepared
embedded digits and an original trained for two epochs, registered in a SQLite MLflow store with @production
(``memunlearn.requests.bootstrap``, no DVC: the requests read only these files); ``build_text``: the same for the
text preset, through the text ``Modality``."""
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


TINY_TEXT = {  # the text preset (params/text.yaml) shrunk: 120 chunks of 24 tokens, 4 canaries, a micro GPT-2
    "data": {"text": {"vocab_size": 300, "seq_len": 24, "max_sequences": 120, "canary_copies": [1, 3],
                      "canaries_per_count": 2, "canary_digits": 3}},
    "train": {"model": "gpt2_micro", "epochs": 2, "device": "cpu"},
    "train_records": {"first_epoch_grads": []},
    "memorize": {"num_models": 2},
    "methods": {"neggrad_plus_lm": {"epochs": 1}},
    "requests": {"device": "cpu", "audit_margin": 0.5, "max_perplexity_increase": 10.0,
                 "max_overforgetting_loss": 10.0, "exposure_alpha": 0.0},
}


def build_text(root: Path, update: dict | None = None, exact: bool = True, shrink: dict = TINY_TEXT) -> Path:
    """A text lineage in ``root`` through the text ``Modality`` as the prepare, train and (``exact``) memorize
    stages run it: params.yaml (the text preset with ``shrink``, then ``update``), data/prepared,
    data/train/model.pt, data/memorize/scores.parquet, the original registered with @production."""
    from memunlearn.config import from_params
    from memunlearn.data import PrepareConfig
    from memunlearn.io import save_table
    from memunlearn.memorization import ExactConfig
    from memunlearn.modality import load_modality
    from memunlearn.tracking import ModelRecord, StageRecord, claim_alias, record_stage
    from memunlearn.training.recipe import RecordConfig, recipe_for

    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    set_params(root, _merge(yaml.safe_load((REPO / "params/text.yaml").read_text()),
                            _merge(yaml.safe_load(yaml.safe_dump(shrink)), update or {})))
    params = yaml.safe_load((root / "params.yaml").read_text())
    modality, prepared, train_dir = load_modality("text"), root / "data/prepared", root / "data/train"
    modality.prepare(from_params(PrepareConfig, params["data"], "data"), root / "data/raw", prepared)
    data, recipe = modality.load(prepared), recipe_for(params, "original")
    records = from_params(RecordConfig, params["train_records"], "train_records")
    model, _, _, _ = modality.train_original(data, recipe, records, "cpu", train_dir, None)
    modality.save_model(model, recipe.model, data.info, train_dir / "model.pt")
    if exact:
        scores, _, _ = modality.memorize(data, recipe_for(params, "subset"),
                                         from_params(ExactConfig, params["memorize"], "memorize"), "cpu",
                                         root / "data/memorize", root / "data/memorize/plots", None)
        save_table(scores, root / "data/memorize/scores.parquet")
    uri, artifacts = store_location(root)
    target = TrackingTarget(uri, artifacts)
    record_stage(StageRecord("train", models={"original_model": ModelRecord(
        model, "original", data.info, {"model": recipe.model}, modality.model_card(data.info))},
        datasets={"D": modality.dataset_view(data.train, data), "T": modality.dataset_view(data.test, data)}),
        target)
    claim_alias(target, "original")
    return root
