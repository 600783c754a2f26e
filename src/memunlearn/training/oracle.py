"""The retrain oracle: a fresh model trained on R = D \\ F with the original recipe (docs/methods.md §6).

Every metric compares an unlearned model with this model on the same
forget set. The ``retrain`` unlearning method, the ``oracle`` and
``grids`` stage and LiRA's retrained copies all train it here.

Stages that train the same oracle (the ``oracle`` stage and the ``ablations``
grid's first mixed forget set share F, recipe and seed) go through
``cached_oracle``: a local cache keyed by everything that determines the
model (R's examples, the recipe, the seed, and the code that trains it), so
the second stage loads the first one's model and its training seconds.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data.splits import DatasetInfo, ImageSplit, dataset_fingerprint
from ..io import atomic_write
from ..models import architecture_files, build_model
from ..provenance import PACKAGE_ROOT, imported_files, source_fingerprint
from ..seeding import derive_seed, generator
from .checkpoint import load_checkpoint, save_checkpoint
from .loop import RowHook, fit
from .recipe import TrainConfig, recipe_identity, resolved


@dataclass(frozen=True)
class OracleConfig:
    """Params section ``oracle``; the recipe is the ``train`` section's."""

    seed: int = 0  # initialization and data order of the oracle


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


def oracle_key(retain: ImageSplit, recipe: TrainConfig, seed: int) -> str:
    """16 hex digits over R's content, the recipe's identity (``precision`` concrete), the seed and the training
    code."""
    code = source_fingerprint(imported_files(PACKAGE_ROOT / "training" / "oracle.py",
                                             *architecture_files([recipe.model])))
    identity = {"data": dataset_fingerprint(retain), "recipe": recipe_identity(recipe), "seed": seed, "code": code}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=list).encode()).hexdigest()[:16]


def cached_oracle(retain: ImageSplit, info: DatasetInfo, recipe: TrainConfig, device: torch.device, seed: int,
                  cache: Path | None, on_row: RowHook | None = None) -> tuple[nn.Module, float, bool]:
    """``train_oracle``, or its model from ``cache`` when an identical oracle was trained before.

    Returns (model, training seconds, whether it came from the cache); a cached model keeps the seconds its
    training took, so cost comparisons do not change with caching. ``cache=None`` always trains. ``on_row``:
    as ``train_oracle``'s."""
    if cache is None:
        start = time.perf_counter()
        model = train_oracle(retain, info, recipe, device, seed, on_row)
        return model, time.perf_counter() - start, False
    folder = Path(cache) / oracle_key(retain, resolved(recipe, device), seed)
    record = folder / "oracle.json"
    if record.exists():
        try:
            model, _ = load_checkpoint(folder / "model.pt", "oracle")
            return model, float(json.loads(record.read_text())["seconds"]), True
        except (RuntimeError, FileNotFoundError, KeyError, ValueError):
            pass  # unreadable: train it again, overwriting
    start = time.perf_counter()
    model = train_oracle(retain, info, recipe, device, seed, on_row)
    seconds = time.perf_counter() - start
    save_checkpoint(model, recipe.model, info, folder / "model.pt")
    atomic_write(record, lambda f: f.write(json.dumps({"seconds": seconds}).encode()))  # last: marks it complete
    return model, seconds, False
