"""The retrain oracle: a fresh model trained on R = D \\ F with the original recipe (docs/methods.md §6).

Every metric compares an unlearned model with this model on the same
forget set. The ``retrain`` unlearning method, the ``oracle`` and
``<grid>_oracle`` stages and LiRA's retrained copies all train it here.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data.splits import DatasetInfo, ImageSplit
from ..models import build_model
from ..seeding import derive_seed, generator
from .loop import fit
from .recipe import TrainConfig


@dataclass(frozen=True)
class OracleConfig:
    """Params section ``oracle``; the recipe is the ``train`` section's."""

    seed: int = 0  # initialization and data order of the oracle


def train_oracle(retain: ImageSplit, info: DatasetInfo, recipe: TrainConfig, device: torch.device,
                 seed: int) -> nn.Module:
    """A model trained from scratch on ``retain``; its init and data order derive from ``seed`` alone."""
    # purposes keep the names of the `retrain` method's draws: the same seed gives the same oracle everywhere
    model = build_model(recipe.model, info.in_channels, info.num_classes, info.image_size,
                        seed=derive_seed(seed, "unlearn/retrain_init"))
    fit(model, retain, info, recipe, generator(seed, "unlearn/retrain_order"), device)
    return model
