"""`memunlearn store`: what the subset-model store holds, whether every file is intact, and which keys no
current params use (store.py has the layout, ``<root>/<key>/model_<k>.npz``).

No stage imports this module, so editing it reruns nothing (docs/architecture.md rule 7).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..config import from_params
from ..data.splits import load_split
from ..training.recipe import recipe_for
from .exact import ExactConfig
from .store import key_for, read_model

MODEL_FILE = "model_*.npz"


@dataclass(frozen=True)
class StoredKey:
    key: str
    indices: list[int]  # the model indices k stored under it
    bytes: int  # every file under the key's folder


def stored_keys(root: Path) -> list[StoredKey]:
    """Every key folder under ``root``, by name."""
    found = []
    for folder in sorted(p for p in Path(root).glob("*") if p.is_dir()):
        indices = sorted(_index(p) for p in folder.glob(MODEL_FILE) if _index(p) is not None)
        found.append(StoredKey(folder.name, indices, sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())))
    return found


def current_key(params: Mapping[str, Any], prepared: Path) -> str:
    """The key the memorize stage uses for ``params`` (its ``train`` and ``memorize`` sections), the prepared
    splits in ``prepared`` and the code in use: ``store.key_for``, as the stage calls it."""
    recipe = recipe_for(params, "subset")
    config = from_params(ExactConfig, params.get("memorize"), "memorize")
    for name in ("train.npz", "test.npz"):
        if not (Path(prepared) / name).is_file():
            raise FileNotFoundError(f"{Path(prepared) / name} is missing; run `dvc repro prepare` "
                                    "(or `dvc pull prepare`) first")
    return key_for(load_split(Path(prepared) / "train.npz"), load_split(Path(prepared) / "test.npz"), recipe, config)


def verify(root: Path) -> tuple[int, list[str]]:
    """(files checked, one line per bad file: its path and what is wrong): checksums, indices, stray files."""
    checked, problems = 0, []
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        checked += 1
        index = _index(path)
        if index is None or path.parent.parent != Path(root):
            problems.append(f"{path}: not a subset-model file (<key>/model_<k>.npz); remove it")
            continue
        try:
            read_model(path, index)
        except ValueError as exc:
            problems.append(f"{path}: {exc}; delete it and `dvc repro memorize` restores it from DVC or retrains it")
    return checked, problems


def unused_keys(root: Path, keep: set[str]) -> list[StoredKey]:
    """The stored keys not in ``keep``."""
    return [stored for stored in stored_keys(root) if stored.key not in keep]


def remove_key(root: Path, key: str) -> None:
    shutil.rmtree(Path(root) / key)


def _index(path: Path) -> int | None:
    """k of ``model_<k>.npz``; None for any other name."""
    stem = path.stem
    if path.suffix != ".npz" or not stem.startswith("model_") or not stem[6:].isdigit():
        return None
    return int(stem[6:])
