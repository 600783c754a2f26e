"""The retrain oracle: a fresh model trained on R = D \\ F with the original recipe (docs/methods.md §6).

Every metric compares an unlearned model with this model on the same
forget set. The ``retrain`` unlearning method, the ``oracle`` and
``grids`` stage and LiRA's retrained copies all train it here.

Stages that train the same oracle (the ``oracle`` stage and the ``ablations``
grid's first mixed forget set share F, recipe and seed) go through
``cached_oracle``: the model cache (model_cache.py, the text modality's too)
keyed by everything that determines the model (R's examples, the recipe, the
seed, and the code that trains it), so the second stage loads the first
one's model and its training seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.splits import DatasetInfo, ImageSplit, dataset_fingerprint
from ..models import architecture_files, build_model
from ..provenance import PACKAGE_ROOT, imported_files
from ..seeding import derive_seed, generator
from .checkpoint import load_checkpoint, save_checkpoint
from .loop import RowHook, fit
from .model_cache import cached_model
from .recipe import TrainConfig, recipe_identity, resolved


@dataclass(frozen=True)
class OracleConfig:
    """Params section ``oracle``; the recipe is the ``train`` section's with ``recipe``'s keys over it
    (recipe.py ``recipe_for(params, "oracle")``)."""

    seed: int = 0  # initialization and data order of the oracle
    recipe: dict[str, Any] = field(default_factory=dict)  # train keys for every retrain oracle; {} = train's


def train_oracle(retain: ImageSplit, info: DatasetInfo, recipe: TrainConfig, device: torch.device,
                 seed: int, on_row: RowHook | None = None) -> nn.Module:
    """A model trained from scratch on ``retain``; its init and data order derive from ``seed`` alone.
    ``on_row`` sees each epoch's history row (e.g. to log it live)."""
    # purposes keep the names of the `retrain` method's draws: the same seed gives the same oracle everywhere
    model = build_model(recipe.model, info.in_channels, info.num_classes, info.image_size,
                        seed=derive_seed(seed, "unlearn/retrain_init"))
    fit(model, retain, info, recipe, generator(seed, "unlearn/retrain_order"), device, on_row=on_row,
        progress="oracle epochs")
    return model


def oracle_identity(retain: ImageSplit, recipe: TrainConfig, seed: int) -> dict:
    """What determines an oracle beside its code: R by content, the recipe's identity (``precision`` concrete,
    the device not at all), the seed."""
    return {"data": dataset_fingerprint(retain), "recipe": recipe_identity(recipe), "seed": seed}


def cached_oracle(retain: ImageSplit, info: DatasetInfo, recipe: TrainConfig, device: torch.device, seed: int,
                  cache: Path | None, on_row: RowHook | None = None) -> tuple[nn.Module, float, bool]:
    """``train_oracle``, or its model from ``cache`` (model_cache.py) when an identical oracle was trained before:
    the same R by content, recipe (``precision`` concrete), seed and training code. Returns (model, training
    seconds, whether it came from the cache). ``on_row``: as ``train_oracle``'s."""
    identity = oracle_identity(retain, resolved(recipe, device), seed)
    code = imported_files(PACKAGE_ROOT / "training" / "oracle.py", *architecture_files([recipe.model]))
    model, record, cached = cached_model(
        cache, "oracle", identity, code, lambda: train_oracle(retain, info, recipe, device, seed, on_row),
        lambda model, folder: save_checkpoint(model, recipe.model, info, folder / "model.pt"),
        lambda folder: load_checkpoint(folder / "model.pt", "oracle")[0])
    return model, float(record["seconds"]), cached
