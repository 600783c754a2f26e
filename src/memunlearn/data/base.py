"""The dataset registry ``DATASETS`` and what a loader returns.

A loader returns the full train pool and test set as ``ImageSplit``s with
stable ``example_id``s: train rows are numbered from 0, test rows continue
after the last train id, so ids are unique across both.

Text is a second modality with its own registry, ``TEXT_CORPORA`` below
(entries in data/corpus.py): a corpus yields documents, not labelled arrays, and its
tokenizer is an output of preparation. What both modalities share is
``ExampleSplit``: rows keyed by ``example_id`` with the same id API, which
is all that forget sets, partitions and per-example stores need, and
training batches that know their own loss, which is all that the
gradient-based unlearning methods need (unlearning/common.py).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import torch

from ..registry import Registry, modality_of
from .splits import ImageSplit


class ExampleSplit(Protocol):
    """What ``ImageSplit`` and ``TextSplit`` (data/text.py) both offer: rows keyed by example_id."""

    example_ids: torch.Tensor  # (N,) int64

    def __len__(self) -> int: ...
    def fingerprint(self) -> str: ...  # by content: the caches' keys
    def take(self, positions) -> "ExampleSplit": ...
    def select_ids(self, ids) -> "ExampleSplit": ...
    def drop_ids(self, ids) -> "ExampleSplit": ...
    def id_mask(self, ids) -> torch.Tensor: ...
    def concat(self, other) -> "ExampleSplit": ...
    def training_batches(self, info, batch_size: int, gen, device) -> Iterator: ...  # batches with .loss(model)


@dataclass(frozen=True)
class RawDataset:
    train: ImageSplit
    test: ImageSplit
    num_classes: int
    owner_ids: Any = None  # a data/owner_ids.py table (example_id, owner_id); None = str(example_id)
    class_names: tuple[str, ...] = ()  # by label, where the files name the classes; () = labels.py's names


Loader = Callable[..., RawDataset]  # (raw_dir, split_seed, test_fraction[, path, image_size]): see source_options
DATASETS: Registry[Loader] = Registry("dataset")


# () -> documents, in a fixed order (data/text_prepare.py tokenizes them as one stream); a corpus read from a file
# takes (path) and may return data/corpus.py ``TextRecords`` instead: one example per record, with the owner's ids
CorpusLoader = Callable[..., Any]
TEXT_CORPORA: Registry[CorpusLoader] = Registry("text corpus")


MODALITY_DATASETS: dict[str, Registry] = {"image": DATASETS, "text": TEXT_CORPORA}  # modality -> its data registry


def data_modality(name: str) -> str:
    """The modality whose registry holds dataset ``name`` (``data.dataset`` accepts any of them)."""
    return modality_of(name, MODALITY_DATASETS, "dataset")


def source_options(loader: Callable, options: dict[str, Any]) -> dict[str, Any]:
    """The ``options`` (``data.path``, ``data.image_size``) that ``loader``'s signature names: a dataset read from
    files takes them, a built-in one none."""
    names = inspect.signature(loader).parameters
    return {key: value for key, value in options.items() if key in names}


def reads_files(name: str) -> bool:
    """Whether dataset ``name`` (any modality) is read from ``data.path``."""
    return "path" in source_options(MODALITY_DATASETS[data_modality(name)].get(name), {"path": ""})
