"""The original language models a text grid and text forgetting quality train by content (modality/text/cache.py):
the original of a seed, recording the first-epoch gradients of the layer sets its cells ascend along (the retrain
oracle of a forget set: cache.py ``cached_oracle``)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import torch

from .canaries import train_lm
from .lm import LMTrainConfig
from .lm_grads import LMFirstEpochGrads
from ...unlearning.first_epoch_ga import ALL_EPOCHS, FIRST_EPOCH
from ...training.recipe import TrainConfig
from .cache import cached_lm
from .common import PreparedRun


def cached_original(cache: Path | None, data: PreparedRun, recipe: TrainConfig, seed: int,
                    layers: Mapping[str, Sequence[str]]
                    ) -> tuple[torch.nn.Module, dict[str, LMFirstEpochGrads], dict, bool]:
    """The original model of ``seed`` (modality/text/canaries.py ``train_lm``: the train stage's seeds) with the
    gradients of ``layers`` per stored source (ablation.py ``recordings``: ``first_epoch``, ``all_epochs``; none
    when empty): cached_lm's (model, stores by source, record, cached)."""
    def train():
        trained, first = train_lm(data, LMTrainConfig.of(recipe), seed,
                                  recorder_layers=tuple(layers.get(FIRST_EPOCH, ())) or None,
                                  all_epochs_layers=tuple(layers.get(ALL_EPOCHS, ())) or None)
        stores = {FIRST_EPOCH: first, ALL_EPOCHS: trained.all_epochs_grads}
        return trained.model, {source: grads for source, grads in stores.items() if grads is not None}

    return cached_lm(cache, "original", data.train, data.info, recipe, seed, layers, train,
                     "modality/text/canaries.py")
