"""What an unlearning method gets beside the model and the data: ``UnlearnContext`` from the pipeline's files.

This decides what first-epoch GA and the calibrating methods see, so every
stage that unlearns lists this file as a DVC dep.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..data.prepare import VALIDATION_FILE
from ..data.splits import DatasetInfo, load_split
from ..training.first_epoch_grads import load_first_epoch_grads
from ..training.recipe import TrainConfig
from . import UnlearnContext


def unlearn_context(info: DatasetInfo, recipe: TrainConfig, device: torch.device, seed: int, prepared: Path,
                    first_epoch_grads: Path) -> UnlearnContext:
    """The context methods get: the stored first-epoch gradients when the train stage recorded them
    (``first_epoch_grads`` exists), and held-out data for methods that calibrate against it: always the
    validation split in ``prepared`` (data.validation_fraction; None without one), never the test set, which
    is for evaluation only."""
    grads = load_first_epoch_grads(first_epoch_grads) if Path(first_epoch_grads).exists() else None
    validation_file = Path(prepared) / VALIDATION_FILE
    validation = load_split(validation_file) if validation_file.exists() else None
    return UnlearnContext(info, recipe, device, seed, first_epoch_grads=grads, heldout=validation)
