"""The ``prepare`` step: load a dataset, subsample, carve a validation split, plant label noise.

The validation split is what every calibration and held-out computation uses
(first_epoch_ga's target, holdout_retrain's fine-tuning data); the test set
is kept for evaluation only (test accuracy, the MIA's non-members). It is a
seeded ``validation_fraction`` of the test set (default: the training set and
so every memorization score are unchanged) or of the training set (carved
before the label noise is planted, so its labels are clean; the model never
trains on it). ``validation_fraction: 0`` = no validation split: the methods
and proxies that need one then stop with a message naming this parameter.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ..config import ConfigError, check_choice, check_fraction
from ..seeding import generator
from .base import DATASETS, data_modality, reads_files, source_options
from .files import check_path
from .noise import flip_labels
from .owner_ids import default_owner_ids
from .splits import DatasetInfo, ImageSplit, channel_stats, load_split
from .text_prepare import TextDataConfig, TextOptions, check_text_options

VALIDATION_SOURCES = ("test", "train")
VALIDATION_FILE = "val.npz"


@dataclass(frozen=True)
class PrepareConfig:
    dataset: str = "mnist_embedded"
    split_seed: int = 0
    test_fraction: float = 0.2  # only for datasets without an official test split
    max_train: int = 0  # 0 = all; otherwise a seeded random subsample
    max_test: int = 0
    noise_fraction: float = 0.0  # fraction of train labels flipped
    noise_seed: int = 0
    validation_fraction: float = 0.0  # of validation_source held out as the validation split; 0 = none
    validation_source: str = "test"  # test | train
    validation_per_class: bool = False  # the fraction of each class (the RUM code's 10% per class of train)
    text: TextOptions = TextOptions()  # a text corpus's own keys (data.text); image datasets ignore them
    path: str = ""  # the folder (image_folder) or file (text_jsonl) of a dataset read from files; "" = built in
    image_size: int = 0  # image_folder: resize every image to this square size; 0 = keep (one size required)

    def validate(self) -> None:
        self.check_source()
        if data_modality(self.dataset) == "text":  # unknown name -> error listing every modality's datasets
            self.text_config().validate()
            for name, off in (("noise_fraction", 0.0), ("max_train", 0), ("max_test", 0)):
                if getattr(self, name) != off:
                    raise ConfigError(f"data.{name}: does not apply to text corpus {self.dataset!r} (it plants "
                                      f"canaries, data.text.canary_*, and data.text.max_sequences limits it); set "
                                      f"data.{name}: {off}")
            return
        check_text_options(self.text)
        check_fraction(self.test_fraction, "data.test_fraction", open_low=True)
        check_fraction(self.noise_fraction, "data.noise_fraction")
        check_fraction(self.validation_fraction, "data.validation_fraction")
        if self.validation_fraction >= 1:
            raise ValueError(f"data.validation_fraction must be < 1 (the rest stays {self.validation_source} data), "
                             f"got {self.validation_fraction}")
        check_choice(self.validation_source, VALIDATION_SOURCES, "data.validation_source")
        for name in ("max_train", "max_test"):
            if getattr(self, name) < 0:
                raise ValueError(f"data.{name} must be >= 0 (0 keeps all), got {getattr(self, name)}")


    def check_source(self) -> None:
        """``data.path`` and ``data.image_size`` against the dataset: set where it reads files, else off."""
        if reads_files(self.dataset):
            check_path(self.path)
        elif self.path:
            raise ConfigError(f"data.path: dataset {self.dataset!r} is built in and reads no files; set data.path: "
                              f"\"\" or data.dataset: image_folder / text_jsonl")
        if self.image_size < 0:
            raise ConfigError(f"data.image_size must be >= 0 (0 keeps the images' size), got {self.image_size}")
        if self.image_size and (data_modality(self.dataset) != "image" or "image_size" not in self.source_options()):
            raise ConfigError(f"data.image_size: does not apply to dataset {self.dataset!r} (only image_folder "
                              f"resizes); set data.image_size: 0")

    def source_options(self) -> dict:
        """The keys that the dataset's loader reads (``data.path``, ``data.image_size``; none for a built-in)."""
        return source_options(DATASETS.get(self.dataset), {"path": self.path, "image_size": self.image_size})

    def text_config(self) -> TextDataConfig:
        """A text corpus's preparation config: the shared keys and ``data.text``."""
        return TextDataConfig.of(self.dataset, self.split_seed, self.validation_fraction, self.test_fraction,
                                 self.text, self.path)


@dataclass(frozen=True)
class PreparedData:
    train: ImageSplit  # labels include the planted noise
    test: ImageSplit
    info: DatasetInfo
    flipped: pd.DataFrame  # example_id, clean_label, noisy_label
    validation: ImageSplit | None = None  # calibration / held-out data; None when validation_fraction is 0
    owner_ids: pd.DataFrame | None = None  # example_id, owner_id of every example kept (data/owner_ids.py)


def prepare(config: PrepareConfig, raw_dir: Path) -> PreparedData:
    raw = DATASETS.get(config.dataset)(Path(raw_dir), config.split_seed, config.test_fraction,
                                       **config.source_options())
    train = _subsample(raw.train, config.max_train, config.split_seed, "train")
    test = _subsample(raw.test, config.max_test, config.split_seed, "test")
    validation = None
    if config.validation_fraction > 0:
        source = test if config.validation_source == "test" else train
        validation, rest = carve(source, config.validation_fraction, config.split_seed,
                                 config.validation_per_class)
        train, test = (train, rest) if config.validation_source == "test" else (rest, test)
    train, flipped = flip_labels(train, config.noise_fraction, raw.num_classes, config.noise_seed)
    mean, std = channel_stats(train.images)
    _, channels, height, _ = train.images.shape
    info = DatasetInfo(config.dataset, raw.num_classes, channels, height, mean, std, raw.class_names)
    kept = torch.cat([s.example_ids for s in (train, validation, test) if s is not None]).sort().values.numpy()
    owners = (default_owner_ids(kept) if raw.owner_ids is None
              else raw.owner_ids.set_index("example_id").loc[kept].reset_index())
    return PreparedData(train, test, info, flipped, validation, owners)


def carve(split: ImageSplit, fraction: float, seed: int, per_class: bool = False) -> tuple[ImageSplit, ImageSplit]:
    """(a seeded random ``fraction`` of ``split``, at least one row; the rest), each in ``split``'s order.
    per_class: ``int(fraction * n_c)`` rows of each class c instead (the RUM code's carve: 500 of each CIFAR-10
    class), the first of that class in the same seeded order."""
    order = torch.randperm(len(split), generator=generator(seed, "validation"))
    if per_class:
        labels = split.labels[order]  # (N,) in the seeded order
        rank = torch.zeros_like(labels)  # each row's position among its class's rows in that order
        for c in labels.unique():
            rows = (labels == c).nonzero().squeeze(1)
            rank[rows] = torch.arange(len(rows))
        counts = torch.bincount(labels)
        held = rank < (fraction * counts[labels].double()).floor().long()
        if not held.any() or held.all():
            raise ValueError(f"data.validation_fraction {fraction} per class leaves no rows of a "
                             f"{len(split)}-row split on one side; raise it or set validation_per_class: false")
        return split.take(order[held].sort().values), split.take(order[~held].sort().values)
    n = max(1, int(round(fraction * len(split))))
    if n >= len(split):
        raise ValueError(f"data.validation_fraction {fraction} leaves no rows of a {len(split)}-row split")
    return split.take(order[:n].sort().values), split.take(order[n:].sort().values)


def load_validation(prepared: Path) -> ImageSplit:
    """The validation split written by the prepare stage; a clear error when there is none."""
    path = Path(prepared) / VALIDATION_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the test set is for evaluation only, so calibration and held-out "
                                "data need a validation split; set data.validation_fraction > 0 in params.yaml and "
                                "run `dvc repro prepare`")
    return load_split(path)


def _subsample(split: ImageSplit, limit: int, seed: int, purpose: str) -> ImageSplit:
    if limit == 0 or limit >= len(split):
        return split
    keep = torch.randperm(len(split), generator=generator(seed, f"subsample/{purpose}"))[:limit].sort().values
    return split.take(keep)
