"""Stage ``oracle`` on text: a language model retrained from scratch on R = D \\ F with the train recipe."""
from __future__ import annotations

import time
from typing import Any, Mapping

from ...config import from_params
from ...devices import resolve_device
from ...io import load_table, save_json
from ...models import build_lm
from ...partition import apply_partition
from ...seeding import derive_seed, generator
from ...tracking import StageRecord
from ...training.lm import LMTrainConfig, fit_lm, save_lm_checkpoint
from ...training.oracle import OracleConfig
from ...training.recipe import TrainConfig
from ..base import StagePaths
from .common import load_prepared, logged


def train_text_oracle(retain, info, recipe: TrainConfig, seed: int, on_row=None):
    """(a language model trained from scratch on ``retain``, its history); init and order from ``seed`` alone,
    drawn with the purposes of training/oracle.py's train_oracle (the oracle stage and the text grids)."""
    model = build_lm(recipe.model, info.vocab_size, info.seq_len, seed=derive_seed(seed, "unlearn/retrain_init"))
    history = fit_lm(model, retain, LMTrainConfig.of(recipe), info.pad_id, generator(seed, "unlearn/retrain_order"),
                     device=resolve_device(recipe.device), on_row=on_row)
    return model, history


def run(params: Mapping[str, Any], paths: StagePaths, on_row=None) -> StageRecord:
    recipe = from_params(TrainConfig, params["train"], "train")
    config = from_params(OracleConfig, params["oracle"], "oracle")
    data = load_prepared(paths)
    parts = apply_partition(data.train, load_table(paths.partition / "forget.csv", "partition"))
    start = time.perf_counter()
    model, history = train_text_oracle(parts.retain, data.info, recipe, config.seed, on_row)
    seconds = time.perf_counter() - start
    save_lm_checkpoint(model, recipe.model, data.info, paths.oracle / "model.pt")
    metrics = {"seconds": seconds, "examples_processed": len(parts.retain) * recipe.epochs, "cached": False}
    save_json(metrics, paths.metrics / "oracle.json")
    copies = data.copies()
    return StageRecord("oracle", metrics=metrics, history=history, artifacts=[paths.oracle / "model.pt"],
                       datasets={"F": logged(parts.forget, copies), "R": logged(parts.retain, copies)})
