"""The ``prepare`` step: load a dataset, subsample, plant label noise."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ..config import check_fraction
from ..seeding import generator
from .datasets import DATASETS
from .noise import flip_labels
from .splits import DatasetInfo, ImageSplit, channel_stats


@dataclass(frozen=True)
class PrepareConfig:
    dataset: str = "mnist_embedded"
    split_seed: int = 0
    test_fraction: float = 0.2  # only for datasets without an official test split
    max_train: int = 0  # 0 = all; otherwise a seeded random subsample
    max_test: int = 0
    noise_fraction: float = 0.0  # fraction of train labels flipped
    noise_seed: int = 0

    def validate(self) -> None:
        DATASETS.get(self.dataset)  # unknown name -> error listing the datasets
        check_fraction(self.test_fraction, "data.test_fraction", open_low=True)
        check_fraction(self.noise_fraction, "data.noise_fraction")
        for name in ("max_train", "max_test"):
            if getattr(self, name) < 0:
                raise ValueError(f"data.{name} must be >= 0 (0 keeps all), got {getattr(self, name)}")


@dataclass(frozen=True)
class PreparedData:
    train: ImageSplit  # labels include the planted noise
    test: ImageSplit
    info: DatasetInfo
    flipped: pd.DataFrame  # example_id, clean_label, noisy_label


def prepare(config: PrepareConfig, raw_dir: Path) -> PreparedData:
    raw = DATASETS.get(config.dataset)(Path(raw_dir), config.split_seed, config.test_fraction)
    train = _subsample(raw.train, config.max_train, config.split_seed, "train")
    test = _subsample(raw.test, config.max_test, config.split_seed, "test")
    train, flipped = flip_labels(train, config.noise_fraction, raw.num_classes, config.noise_seed)
    mean, std = channel_stats(train.images)
    _, channels, height, _ = train.images.shape
    info = DatasetInfo(config.dataset, raw.num_classes, channels, height, mean, std)
    return PreparedData(train, test, info, flipped)


def _subsample(split: ImageSplit, limit: int, seed: int, purpose: str) -> ImageSplit:
    if limit == 0 or limit >= len(split):
        return split
    keep = torch.randperm(len(split), generator=generator(seed, f"subsample/{purpose}"))[:limit].sort().values
    return split.take(keep)
