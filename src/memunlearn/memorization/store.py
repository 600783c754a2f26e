"""A persistent per-model store for exact memorization (docs/methods.md §1).

Each subset model's outputs are saved once, under a key made of everything
that determines them: the data (a fingerprint of the prepared arrays), the
training recipe, the subset fraction, the base seed, and the code that
trains and scores a subset model (``MODEL_CODE``: the engine and every
project file it imports, by syntax tree, so a comment edit keeps the key).
Model k's seed derives from the base seed and k alone, so:

- growing K trains only the new indices; shrinking K trains nothing;
- a killed run loses at most the models in flight: each file is written
  atomically and carries a checksum of its arrays, and a truncated or
  corrupt file is detected, deleted and recomputed, never read as valid;
- a changed recipe, dataset or training code gets a new key, so stale outputs are never mixed in.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..data.splits import ImageSplit, dataset_fingerprint
from ..devices import resolve_device
from ..io import atomic_write
from ..provenance import PACKAGE_ROOT, imported_files, source_fingerprint
from ..training.recipe import TrainConfig, recipe_identity, resolved
from .engine import SubsetModelOutputs

if TYPE_CHECKING:
    from .exact import ExactConfig

log = logging.getLogger("memunlearn.memorization")

ARRAYS = ("mask", "train_true_prob", "train_correct", "test_true_prob", "test_correct")


def model_code_fingerprint(root: Path = PACKAGE_ROOT) -> str:
    """Fingerprint of the code that trains and scores a subset model: ``memorization/engine.py`` and the
    project files it imports (training loop, stacked training, models, seeding, normalization, ...)."""
    return source_fingerprint(imported_files(root / "memorization" / "engine.py", root=root), root)


def store_key(fingerprint: str, recipe: TrainConfig, subset_fraction: float, seed: int,
              code: str | None = None) -> str:
    """``code``: ``model_code_fingerprint()`` of the code in use unless given. ``recipe.precision`` must be
    concrete (``resolve_precision``): machines that resolve ``auto`` differently never share models."""
    identity = json.dumps({"data": fingerprint, "recipe": recipe_identity(recipe), "p": subset_fraction, "seed": seed,
                           "code": code or model_code_fingerprint()}, sort_keys=True, default=list)
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def key_for(train: ImageSplit, test: ImageSplit, recipe: TrainConfig, config: ExactConfig,
            device: torch.device | None = None) -> str:
    """The key of these splits' subset models under ``recipe`` and the ``memorize`` settings, with this code;
    ``precision: auto`` resolved for ``device`` (default: where ``recipe.device`` lands)."""
    device = device if device is not None else resolve_device(recipe.device)
    return store_key(dataset_fingerprint(train, test), resolved(recipe, device), config.subset_fraction, config.seed)


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in ARRAYS:
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    return digest.hexdigest()


class SubsetModelStore:
    """Files ``<root>/<key>/model_<k>.npz``, one per finished subset model."""

    def __init__(self, root: Path, key: str):
        self.folder = Path(root) / key

    def path(self, index: int) -> Path:
        return self.folder / f"model_{index:05d}.npz"

    def save(self, run) -> None:
        arrays = {name: getattr(run, name) for name in ARRAYS}
        atomic_write(self.path(run.index), lambda f: np.savez(
            f, index=run.index, seconds=run.seconds, checksum=_checksum(arrays), **arrays))

    def load(self, index: int):
        """The stored outputs of model ``index``, or None if absent or invalid (then deleted)."""
        path = self.path(index)
        if not path.exists():
            return None
        try:
            return read_model(path, index)
        except ValueError:
            log.warning("subset model file %s is corrupt, incomplete or of an older format; recomputing it", path)
            path.unlink(missing_ok=True)
            return None

    def indices(self) -> list[int]:
        return sorted(int(p.stem.split("_")[1]) for p in self.folder.glob("model_*.npz"))


def read_model(path: Path, index: int) -> SubsetModelOutputs:
    """Model ``index``'s outputs from ``path``; ValueError saying why when the file is truncated, corrupt, of an
    older format or another model's."""
    try:
        with np.load(path) as z:
            arrays = {name: z[name] for name in ARRAYS}
            seconds, stored_index, checksum = float(z["seconds"]), int(z["index"]), str(z["checksum"])
    except Exception as exc:  # truncated zip, missing member, bad header
        raise ValueError(f"unreadable ({type(exc).__name__}: {exc})") from None
    if stored_index != index:
        raise ValueError(f"holds model {stored_index}, not {index}")
    if checksum != _checksum(arrays):
        raise ValueError("checksum mismatch: its arrays changed after it was written")
    return SubsetModelOutputs(index, *(arrays[name] for name in ARRAYS), seconds=seconds)
