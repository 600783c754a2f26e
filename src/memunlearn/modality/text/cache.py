"""Language models in the model cache (training/model_cache.py, as the image path's training/oracle.py): the
oracle stage's, a text grid's and text forgetting quality's retrain oracles, and the originals a text grid trains
per seed, recording the first-epoch gradients its cells need.

Each key covers the training data by content, the recipe, the seed, the recorded layers and the code that
trains, so a rerun (or another grid with the same forget set) loads them. Unlearning runs of every modality go
through unlearning/cache.py ``cached_strategy``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from ...data.text import TextInfo, TextSplit
from ...devices import resolve_device
from ...models import architecture_files, build_lm
from ...provenance import PACKAGE_ROOT, imported_files
from ...seeding import derive_seed, generator
from ...training.model_cache import cached_model
from ...training.recipe import TrainConfig, recipe_identity, resolved
from .lm import LMTrainConfig, fit_lm, load_lm_checkpoint, save_lm_checkpoint
from .lm_grads import LMFirstEpochGrads, load_lm_grads, save_lm_grads


def cached_lm(cache: Path | None, kind: str, data: TextSplit, info: TextInfo, recipe: TrainConfig, seed: int,
              layers: Mapping[str, Sequence[str]],
              train: Callable[[], tuple[torch.nn.Module, Mapping[str, LMFirstEpochGrads]]],
              code: str) -> tuple[torch.nn.Module, dict[str, LMFirstEpochGrads], dict, bool]:
    """``train()`` -> (model, its recorded gradient stores by source: ``first_epoch``, ``all_epochs``), or both
    from ``cache`` (the model cache, training/model_cache.py) when the same ``kind`` of model (``original``,
    ``oracle``) was trained on the same data, recipe and seed, recording the same ``layers`` per gradient source,
    by the same code (``code``: the module that trains it). Returns (model, stores, its record: training
    seconds, the first run's; whether cached)."""
    identity = {"data": data.fingerprint(), "info": info.to_json(), "seed": seed,
                "recipe": recipe_identity(resolved(recipe, "cpu")),
                "layers": {source: list(names) for source, names in sorted(layers.items()) if names}}
    files = imported_files(PACKAGE_ROOT / code, PACKAGE_ROOT / "modality/text/cache.py",
                           *architecture_files([recipe.model]))

    def save(trained, folder: Path) -> None:
        model, stores = trained
        save_lm_checkpoint(model, recipe.model, info, folder / "model.pt")
        for source, grads in stores.items():
            save_lm_grads(grads, folder / f"{source}_grads.pt")

    def load(folder: Path):
        stores = {source: load_lm_grads(folder / f"{source}_grads.pt") for source in layers
                  if (folder / f"{source}_grads.pt").exists()}
        return load_lm_checkpoint(folder / "model.pt", kind)[0], stores

    (model, stores), record, cached = cached_model(cache, f"text-{kind}", identity, files, train, save, load)
    return model, dict(stores), record, cached


def train_text_oracle(retain, info, recipe: TrainConfig, seed: int, on_row=None):
    """(a language model trained from scratch on ``retain``, its history); init and order from ``seed`` alone,
    drawn with the purposes of training/oracle.py's train_oracle (the oracle stage and the text grids)."""
    model = build_lm(recipe.model, info.vocab_size, info.seq_len, seed=derive_seed(seed, "unlearn/retrain_init"))
    history = fit_lm(model, retain, LMTrainConfig.of(recipe), info.pad_id, generator(seed, "unlearn/retrain_order"),
                     device=resolve_device(recipe.device), on_row=on_row)
    return model, history


def cached_oracle(cache: Path | None, retain: TextSplit, info: TextInfo, recipe: TrainConfig, seed: int,
                  on_row=None) -> tuple[torch.nn.Module, dict, bool]:
    """A model retrained from scratch on ``retain`` with ``seed`` (``train_text_oracle``): (model, record,
    cached). ``on_row``: each epoch's row, when it trains."""
    model, _, record, cached = cached_lm(cache, "oracle", retain, info, recipe, seed, {},
                                         lambda: (train_text_oracle(retain, info, recipe, seed, on_row)[0], {}),
                                         "modality/text/cache.py")
    return model, record, cached
