"""The dataset registry ``DATASETS`` and what a loader returns.

A loader returns the full train pool and test set as ``ImageSplit``s with
stable ``example_id``s: train rows are numbered from 0, test rows continue
after the last train id, so ids are unique across both.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..registry import Registry
from .splits import ImageSplit


@dataclass(frozen=True)
class RawDataset:
    train: ImageSplit
    test: ImageSplit
    num_classes: int


Loader = Callable[[Path, int, float], RawDataset]  # (raw_dir, split_seed, test_fraction)
DATASETS: Registry[Loader] = Registry("dataset")
