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
- a changed recipe, dataset or training code gets a new key, so stale outputs are never mixed in;
- the same model gives the same bytes: a file holds the model's outputs, index and checksum, in a zip
  with fixed member timestamps, and no wall-clock time, so two clones that train the same models get the
  same DVC hash for the store (issue 28 item 4). What a model cost goes to a timings ledger outside the
  content-addressed store (``timings``); files of the older format, which held ``seconds``, still read.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..data.splits import ImageSplit, dataset_fingerprint
from ..devices import resolve_device
from ..io import atomic_write, save_json
from ..models.base import MODELS, architecture_files
from ..provenance import PACKAGE_ROOT, imported_files, source_fingerprint
from ..training.recipe import TrainConfig, recipe_identity, resolved
from .engine import SubsetModelOutputs

if TYPE_CHECKING:
    from .exact import ExactConfig

log = logging.getLogger("memunlearn.memorization")

ARRAYS = ("mask", "train_true_prob", "train_correct", "test_true_prob", "test_correct")
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # every member's timestamp: np.savez stamps the wall clock, which moves the bytes


def model_code_fingerprint(root: Path = PACKAGE_ROOT, model: str | None = None) -> str:
    """Fingerprint of the code that trains and scores a subset model: ``memorization/engine.py``, the project files
    it imports (training loop, stacked training, models, seeding, normalization, ...) and every image
    architecture (imported by name: models/base.py ``ARCHITECTURES``), with ``model``'s library wrapper when it
    is a library's architecture (``torchvision/resnet18``)."""
    names = [*MODELS.names(), *([model] if model else [])]
    files = imported_files(root / "memorization" / "engine.py", *architecture_files(names, root), root=root)
    return source_fingerprint(files, root)


def store_key(fingerprint: str, recipe: TrainConfig, subset_fraction: float, seed: int,
              code: str | None = None) -> str:
    """``code``: ``model_code_fingerprint()`` of the code in use unless given. ``recipe.precision`` must be
    concrete (``resolve_precision``): machines that resolve ``auto`` differently never share models."""
    identity = json.dumps({"data": fingerprint, "recipe": recipe_identity(recipe), "p": subset_fraction, "seed": seed,
                           "code": code or model_code_fingerprint(model=recipe.model)}, sort_keys=True, default=list)
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
    """Files ``<root>/<key>/model_<k>.npz``, one per finished subset model, the same bytes for the same model.

    ``timings``: a folder outside ``root`` (not content-addressed, e.g. not a DVC output) where
    ``<key>.json`` keeps each model's training seconds, so a reused model keeps its price; None: not kept,
    and a reused model's ``seconds`` is NaN (as for one that ``dvc pull`` brought)."""

    def __init__(self, root: Path, key: str, timings: Path | None = None):
        self.folder = Path(root) / key
        self.ledger = Path(timings) / f"{key}.json" if timings is not None else None

    def path(self, index: int) -> Path:
        return self.folder / f"model_{index:05d}.npz"

    def save(self, run) -> None:
        arrays = {name: getattr(run, name) for name in ARRAYS}
        members = {"index": np.int64(run.index), "checksum": np.str_(_checksum(arrays)), **arrays}
        atomic_write(self.path(run.index), lambda f: write_npz(f, members))
        if self.ledger is not None and math.isfinite(run.seconds):
            save_json({**self._seconds(), str(run.index): run.seconds}, self.ledger)

    def load(self, index: int):
        """The stored outputs of model ``index``, or None if absent or invalid (then deleted)."""
        path = self.path(index)
        if not path.exists():
            return None
        try:
            outputs = read_model(path, index)
        except ValueError:
            log.warning("subset model file %s is corrupt, incomplete or of an older format; recomputing it", path)
            path.unlink(missing_ok=True)
            return None
        seconds = self._seconds().get(str(index))
        return outputs if seconds is None else dataclasses.replace(outputs, seconds=float(seconds))

    def indices(self) -> list[int]:
        return sorted(int(p.stem.split("_")[1]) for p in self.folder.glob("model_*.npz"))

    def _seconds(self) -> dict[str, float]:
        """The ledger: model index (as text) -> seconds; empty without one."""
        if self.ledger is None or not self.ledger.is_file():
            return {}
        try:
            return {k: v for k, v in json.loads(self.ledger.read_text()).items() if v is not None}
        except (ValueError, AttributeError):  # a damaged ledger costs timings, never models
            log.warning("timings ledger %s is unreadable; the reused models' seconds are unknown", self.ledger)
            return {}


def write_npz(file, members: dict[str, np.ndarray]) -> None:
    """What ``np.savez`` writes (``np.load`` reads it), with fixed member timestamps: same arrays, same bytes."""
    with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, value in members.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_TIME)
            info.external_attr = 0o600 << 16  # as np.savez: -rw-------
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def read_model(path: Path, index: int) -> SubsetModelOutputs:
    """Model ``index``'s outputs from ``path``; ValueError saying why when the file is truncated, corrupt, of an
    older format or another model's."""
    try:
        with np.load(path) as z:
            arrays = {name: z[name] for name in ARRAYS}
            stored_index, checksum = int(z["index"]), str(z["checksum"])
            seconds = float(z["seconds"]) if "seconds" in z.files else float("nan")  # older format: kept its time
    except Exception as exc:  # truncated zip, missing member, bad header
        raise ValueError(f"unreadable ({type(exc).__name__}: {exc})") from None
    if stored_index != index:
        raise ValueError(f"holds model {stored_index}, not {index}")
    if checksum != _checksum(arrays):
        raise ValueError("checksum mismatch: its arrays changed after it was written")
    return SubsetModelOutputs(index, *(arrays[name] for name in ARRAYS), seconds=seconds)
