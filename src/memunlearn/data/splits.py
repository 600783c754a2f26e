"""In-memory image splits keyed by ``example_id`` and their on-disk form.

Images stay uint8 ``(N, C, H, W)``; they are converted to normalized floats
one batch at a time (``normalize``), so CIFAR-sized data fits in memory.
A split hands out its own training batches (``training_batches``), each of
which knows its loss (``ImageBatch.loss``): the unlearning methods built on
them run on any split type (text: data/text.py's ``TextSplit``, ``TokenBatch``).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..io import atomic_write, require


def batch_positions(n: int, batch_size: int, gen: torch.Generator | None) -> Iterator[torch.Tensor]:
    """Shuffled (if ``gen``) index batches covering ``range(n)`` once."""
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    yield from order.split(batch_size)


class ImageBatch(tuple):
    """A classifier batch: (x normalized (B, C, H, W), y (B,)); unpacks as ``x, y``."""

    def __new__(cls, x: torch.Tensor, y: torch.Tensor):
        return super().__new__(cls, (x, y))

    def loss(self, model: torch.nn.Module) -> torch.Tensor:
        """Mean cross-entropy of ``model`` on the batch."""
        x, y = self
        return torch.nn.functional.cross_entropy(model(x), y)


@dataclass(frozen=True)
class ImageSplit:
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64
    example_ids: torch.Tensor  # (N,) int64, unique and stable across runs

    def __post_init__(self):
        n = len(self.images)
        if not (len(self.labels) == len(self.example_ids) == n):
            raise ValueError("images, labels and example_ids must have the same length")

    def __len__(self) -> int:
        return len(self.labels)

    def fingerprint(self) -> str:
        """16 hex digits over the split's content (``dataset_fingerprint``): the caches' keys."""
        return dataset_fingerprint(self)

    def take(self, positions: torch.Tensor | np.ndarray) -> "ImageSplit":
        """Rows at ``positions`` (indices or a boolean mask)."""
        positions = torch.as_tensor(positions)
        return ImageSplit(self.images[positions], self.labels[positions], self.example_ids[positions])

    def select_ids(self, ids) -> "ImageSplit":
        """Rows whose example_id is in ``ids``, in this split's order."""
        return self.take(self.id_mask(ids))

    def drop_ids(self, ids) -> "ImageSplit":
        return self.take(~self.id_mask(ids))

    def id_mask(self, ids) -> torch.Tensor:
        return torch.isin(self.example_ids, torch.from_numpy(np.array(ids, dtype=np.int64)))

    def with_labels(self, labels: torch.Tensor) -> "ImageSplit":
        return ImageSplit(self.images, labels, self.example_ids)

    def concat(self, other: "ImageSplit") -> "ImageSplit":
        return ImageSplit(
            torch.cat([self.images, other.images]),
            torch.cat([self.labels, other.labels]),
            torch.cat([self.example_ids, other.example_ids]),
        )

    def training_batches(self, info: "DatasetInfo", batch_size: int, gen: torch.Generator | None,
                         device) -> Iterator[ImageBatch]:
        """One pass (shuffled if ``gen``) as normalized device batches."""
        for positions in batch_positions(len(self), batch_size, gen):
            yield ImageBatch(normalize(self.images[positions].to(device), info), self.labels[positions].to(device))


def dataset_fingerprint(*splits: ImageSplit) -> str:
    """16 hex digits over the splits' images, labels and ids, in order: what a model trains on, by content
    (the subset-model store's and the oracle cache's keys)."""
    digest = hashlib.sha256()
    for split in splits:
        for tensor in (split.images, split.labels, split.example_ids):
            digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about the data (saved as ``meta.json``)."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]  # per channel, on the [0, 1] scale
    std: tuple[float, ...]
    class_names: tuple[str, ...] = ()  # by label, where the data names its classes (image_folder: its folders)

    def to_json(self) -> dict:
        """The fields as JSON; no ``class_names`` key where there are none (a built-in dataset's meta.json)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()
                if k != "class_names" or v}

    @classmethod
    def from_json(cls, d: dict) -> "DatasetInfo":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def normalize(images: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 standardized per channel."""
    mean = torch.tensor(info.mean, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - mean) / std


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images.float() / 255.0  # (N, C, H, W)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


# ---- on disk ---------------------------------------------------------------

def save_split(split: ImageSplit, path: Path) -> None:
    atomic_write(
        path,
        lambda f: np.savez_compressed(
            f, images=split.images.numpy(), labels=split.labels.numpy(), example_ids=split.example_ids.numpy()
        ),
    )


def load_split(path: Path) -> ImageSplit:
    with np.load(require(path, "prepare")) as z:
        if "tokens" in z.files:  # data/text.py's TextSplit: a stage without a text path reached text data
            raise ValueError(f"{path} holds token sequences (data.dataset is a text corpus) and this stage runs on "
                             "images only; run the text path's stages: `dvc repro summary` (README, \"Text\")")
        return ImageSplit(
            torch.from_numpy(z["images"]), torch.from_numpy(z["labels"]), torch.from_numpy(z["example_ids"])
        )


def save_info(info: DatasetInfo, path: Path) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(info.to_json(), indent=2).encode()))


def load_info(path: Path) -> DatasetInfo:
    return DatasetInfo.from_json(json.loads(require(path, "prepare").read_text()))
