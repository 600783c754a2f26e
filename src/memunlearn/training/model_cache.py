"""Trained models by content: one cache for every retrain oracle and every model a grid trains, of any modality.

An entry is keyed by what determines the model (its ``kind``, the training data by content, the recipe, the
seed, ...: the caller's ``identity``) and the code that trains it (``code``: files, fingerprinted by their syntax
trees), so a rerun, another stage or another grid with the same forget set loads the model instead of training
it, and edited code never serves an old one. How a model is written and read is the modality's (``save``,
``load``); the training seconds are kept, so cost comparisons do not change with caching.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

from ..io import atomic_write
from ..provenance import source_fingerprint

T = TypeVar("T")
RECORD = "run.json"  # written last: marks an entry complete


def cached_model(cache: Path | None, kind: str, identity: Mapping[str, Any], code: Sequence[Path],
                 train: Callable[[], T], save: Callable[[T, Path], None], load: Callable[[Path], T]
                 ) -> tuple[T, dict, bool]:
    """``train()``'s result, or ``load(folder)`` of the entry an identical training wrote; (result, its record:
    ``seconds`` of the training, the first run's; whether it came from the cache). ``cache=None`` always
    trains; an unreadable entry is trained again and overwritten."""
    def run() -> tuple[T, dict]:
        start = time.perf_counter()
        result = train()
        return result, {"seconds": time.perf_counter() - start}

    if cache is None:
        return (*run(), False)
    key = json.dumps({**identity, "kind": kind, "code": source_fingerprint(list(code))}, sort_keys=True, default=list)
    folder = Path(cache) / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if (folder / RECORD).exists():
        try:
            return load(folder), json.loads((folder / RECORD).read_text()), True
        except (RuntimeError, FileNotFoundError, KeyError, ValueError):
            pass  # unreadable: train it again, overwriting
    result, record = run()
    save(result, folder)
    atomic_write(folder / RECORD, lambda f: f.write(json.dumps(record).encode()))
    return result, record, False
