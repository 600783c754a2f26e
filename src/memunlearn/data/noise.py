"""Planted label noise: flip a fraction of training labels to another class.

Flipped examples are the textbook memorized ones (a model can only fit them
by memorizing), so their ids are saved to check memorization scores against.
"""
from __future__ import annotations

import pandas as pd
import torch

from ..seeding import generator
from .splits import ImageSplit


def flip_labels(split: ImageSplit, fraction: float, num_classes: int, seed: int) -> tuple[ImageSplit, pd.DataFrame]:
    """Return the split with ``round(fraction * N)`` labels changed, and the flip table.

    Every flipped label differs from the original: ``(y + offset) % C`` with
    offset uniform in ``1..C-1``.
    """
    gen = generator(seed, "label_noise")
    n_flip = int(round(fraction * len(split)))
    positions = torch.randperm(len(split), generator=gen)[:n_flip].sort().values
    offsets = torch.randint(1, num_classes, (n_flip,), generator=gen)
    labels = split.labels.clone()
    labels[positions] = (labels[positions] + offsets) % num_classes
    table = pd.DataFrame(
        {
            "example_id": split.example_ids[positions].numpy(),
            "clean_label": split.labels[positions].numpy(),
            "noisy_label": labels[positions].numpy(),
        }
    )
    return split.with_labels(labels), table
