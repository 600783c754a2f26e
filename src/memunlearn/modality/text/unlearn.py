"""Stage ``unlearn`` on text: a registered method (the text modality's METHODS) through a RUM strategy, as the
image path runs it (unlearning/rum.py), through the unlearning cache (modality/text/cache.py's key); the context carries the text info (pad id), the validation split and the
stored first-epoch gradients (first_epoch_ga)."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import pandas as pd

from ...config import from_params
from ...devices import resolve_device
from ...io import load_table, save_json, save_table
from ...partition import apply_partition
from ...tracking import StageRecord
from ...training.lm import load_lm_checkpoint, save_lm_checkpoint
from ...training.lm_grads import load_lm_grads
from ...training.recipe import TrainConfig
from ...unlearning import UnlearnConfig, UnlearnContext
from ...unlearning.cache import cached_strategy
from ..base import StagePaths
from .cache import text_run_key
from .common import load_prepared, logged


def run(params: Mapping[str, Any], paths: StagePaths, on_row=None) -> StageRecord:
    recipe = from_params(TrainConfig, params["train"], "train")
    config = from_params(UnlearnConfig, params["unlearn"], "unlearn")
    plan = config.plan(params["methods"])
    data = load_prepared(paths)
    parts = apply_partition(data.train, load_table(paths.partition / "forget.csv", "partition"))
    model, model_name, _ = load_lm_checkpoint(paths.train / "model.pt", "train")
    grads_file = paths.train / "first_epoch_grads.pt"
    grads = load_lm_grads(grads_file) if grads_file.exists() else None
    ctx = UnlearnContext(data.info, recipe, resolve_device(config.device), config.seed, first_epoch_grads=grads,
                         heldout=data.validation)
    key = text_run_key(config.strategy, model, parts.subsets, parts.retain, plan, ctx)
    model, steps, seconds, cached = cached_strategy(config.strategy, model, parts.subsets, parts.retain, plan, ctx,
                                                    paths.unlearn_cache, key=key)
    save_lm_checkpoint(model, model_name, data.info, paths.unlearn / "model.pt")
    save_table(pd.DataFrame([dataclasses.asdict(s) for s in steps]), paths.unlearn / "steps.csv")
    metrics = {"seconds": seconds, "cached": cached, "strategy": config.strategy, "method": config.method, "steps": len(steps)}
    save_json(metrics, paths.metrics / "unlearn.json")
    copies = data.copies()
    return StageRecord("unlearn", metrics=metrics, artifacts=[paths.unlearn / "steps.csv", paths.unlearn / "model.pt"],
                       datasets={"F": logged(parts.forget, copies), "R": logged(parts.retain, copies)})
