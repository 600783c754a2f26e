"""The original language models a text grid (modality/text/grid.py) and text forgetting quality train by content
(modality/text/cache.py): the original of a seed, recording the first-epoch gradients of the layer sets its
cells ascend along (the retrain oracle of a forget set: cache.py ``cached_oracle``)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import torch

from ...experiments.text_canaries import train_lm
from ...training.lm import LMTrainConfig
from ...training.lm_grads import ALL, LMFirstEpochGrads
from ...training.recipe import TrainConfig
from ...unlearning.lm_first_epoch_ga import from_image_config
from .cache import cached_lm
from .common import PreparedRun

FIRST_EPOCH_GA = "first_epoch_ga"


def ascent(plan) -> tuple[str, tuple[str, ...]] | None:
    """(gradient source, layer set) of a first_epoch_ga plan's method block; None for another method."""
    if plan.registered(plan.method) != FIRST_EPOCH_GA:
        return None
    cfg = from_image_config(plan.step_config(plan.method, None))
    return cfg.gradients, tuple(cfg.layers)


def recorded_layers(ascents: Iterable[tuple[str, tuple[str, ...]] | None]) -> tuple[str, ...]:
    """The layer sets an original must record in its first epoch: every first-epoch ascent's, once (``all``
    covers every other); None entries (other methods) record nothing."""
    layers = sorted({layer for a in ascents if a is not None and a[0] == "first_epoch" for layer in a[1]})
    return (ALL,) if ALL in layers else tuple(layers)


def cached_original(cache: Path | None, data: PreparedRun, recipe: TrainConfig, seed: int, layers: Sequence[str]
                    ) -> tuple[torch.nn.Module, LMFirstEpochGrads | None, dict, bool]:
    """The original model of ``seed`` (experiments/text_canaries.py ``train_lm``: the train stage's seeds) with the
    first-epoch gradients of ``layers`` (none when empty): cached_lm's (model, gradients, record, cached)."""
    def train():
        trained, grads = train_lm(data, LMTrainConfig.of(recipe), seed, recorder_layers=tuple(layers) or None)
        return trained.model, grads

    return cached_lm(cache, "original", data.train, data.info, recipe, seed, layers, train,
                     "experiments/text_canaries.py")
