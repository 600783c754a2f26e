"""The original language models a text grid and text forgetting quality train by content (modality/text/cache.py):
the original of a seed, recording the first-epoch gradients of the layer sets its cells ascend along (the retrain
oracle of a forget set: cache.py ``cached_oracle``)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from .canaries import train_lm
from .lm import LMTrainConfig
from .lm_grads import LMFirstEpochGrads
from ...training.recipe import TrainConfig
from .cache import cached_lm
from .common import PreparedRun


def cached_original(cache: Path | None, data: PreparedRun, recipe: TrainConfig, seed: int, layers: Sequence[str]
                    ) -> tuple[torch.nn.Module, LMFirstEpochGrads | None, dict, bool]:
    """The original model of ``seed`` (modality/text/canaries.py ``train_lm``: the train stage's seeds) with the
    first-epoch gradients of ``layers`` (none when empty): cached_lm's (model, gradients, record, cached)."""
    def train():
        trained, grads = train_lm(data, LMTrainConfig.of(recipe), seed, recorder_layers=tuple(layers) or None)
        return trained.model, grads

    return cached_lm(cache, "original", data.train, data.info, recipe, seed, layers, train,
                     "modality/text/canaries.py")
