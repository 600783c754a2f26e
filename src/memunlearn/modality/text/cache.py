"""Language models and unlearning runs of the text grids by content (the image path's training/oracle.py
``cached_oracle`` and unlearning/cache.py ``cached_strategy``, whose keys read image splits and gradients).

A text grid trains, per seed, an original model recording the first-epoch gradients its cells need, and per
(forget set, seed) a retrain oracle; each key covers the training data by content, the recipe, the seed, the
recorded layers and the code that trains, so a rerun (or another grid with the same forget set) loads them. An
unlearning run goes through ``cached_strategy`` with ``text_run_key``.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from ...data.text import TextInfo, TextSplit
from ...io import atomic_write
from ...provenance import PACKAGE_ROOT, imported_files, source_fingerprint
from ...training.lm import load_lm_checkpoint, save_lm_checkpoint
from ...training.lm_grads import LMFirstEpochGrads, load_lm_grads, save_lm_grads
from ...training.recipe import TrainConfig, recipe_identity, resolved
from ...unlearning.cache import _plan_identity, _weights_digest
from ...unlearning.config import UnlearnPlan
from ...unlearning.base import UnlearnContext

RECORD = "run.json"  # written last: marks a cache entry complete


def split_digest(*splits: TextSplit | None) -> str:
    """16 hex digits over the splits' tokens and example ids, in order (None counts as empty)."""
    digest = hashlib.sha256()
    for split in splits:
        if split is not None:
            for tensor in (split.tokens, split.example_ids):
                digest.update(tensor.contiguous().numpy().tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:16]


def grads_digest(grads: LMFirstEpochGrads | None) -> str | None:
    if grads is None:
        return None
    digest = hashlib.sha256(repr((grads.dense_names, grads.dense_shapes, grads.embedding_shape)).encode())
    for tensor in (grads.example_ids, grads.dense, grads.indptr, grads.row_tokens, grads.rows):
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _key(identity: Mapping[str, Any], *code: str) -> str:
    files = imported_files(*(PACKAGE_ROOT / c for c in code), PACKAGE_ROOT / "modality/text/cache.py")
    identity = {**identity, "code": source_fingerprint(files)}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=list).encode()).hexdigest()[:16]


def text_run_key(strategy: str, model: torch.nn.Module, subsets: Mapping[str, TextSplit], retain: TextSplit,
                 plan: UnlearnPlan, ctx: UnlearnContext) -> str:
    """unlearning/cache.py's ``run_key`` for a language model: original weights, F's subsets and R by content,
    the strategy, the plan, the context (seed, recipe, text info, first-epoch gradients, validation split)."""
    context = {"seed": ctx.seed, "recipe": recipe_identity(resolved(ctx.recipe, ctx.device)),
               "info": ctx.info.to_json(), "first_epoch_grads": grads_digest(ctx.first_epoch_grads),
               "heldout": split_digest(ctx.heldout)}
    identity = {"strategy": strategy, "model": _weights_digest(model),
                "subsets": {name: split_digest(split) for name, split in sorted(subsets.items())},
                "retain": split_digest(retain), "plan": _plan_identity(strategy, plan), "context": context}
    return _key(identity, "unlearning/__init__.py")


def cached_lm(cache: Path | None, kind: str, data: TextSplit, info: TextInfo, recipe: TrainConfig, seed: int,
              layers: Sequence[str], train: Callable[[], tuple[torch.nn.Module, LMFirstEpochGrads | None]],
              code: str) -> tuple[torch.nn.Module, LMFirstEpochGrads | None, dict, bool]:
    """``train()`` -> (model, recorded first-epoch gradients or None), or both from ``cache`` when the same
    ``kind`` of model (``original``, ``oracle``) was trained on the same data, recipe, seed and recorded
    ``layers`` by the same code (``code``: the module that trains it). Returns (model, gradients, its record:
    training seconds, first-epoch recording seconds; the first run's, cached or not, whether cached)."""
    def run() -> tuple[torch.nn.Module, LMFirstEpochGrads | None, dict]:
        start = time.perf_counter()
        model, grads = train()
        return model, grads, {"seconds": time.perf_counter() - start}

    if cache is None:
        return (*run(), False)
    identity = {"kind": kind, "data": split_digest(data), "info": info.to_json(), "seed": seed,
                "recipe": recipe_identity(resolved(recipe, "cpu")), "layers": list(layers)}
    folder = Path(cache) / f"text-{kind}-{_key(identity, code)}"
    if (folder / RECORD).exists():
        try:
            model = load_lm_checkpoint(folder / "model.pt", kind)[0]
            grads = load_lm_grads(folder / "grads.pt") if (folder / "grads.pt").exists() else None
            return model, grads, json.loads((folder / RECORD).read_text()), True
        except (RuntimeError, FileNotFoundError, KeyError, ValueError):
            pass  # unreadable: train it again, overwriting
    model, grads, record = run()
    save_lm_checkpoint(model, recipe.model, info, folder / "model.pt")
    if grads is not None:
        save_lm_grads(grads, folder / "grads.pt")
    atomic_write(folder / RECORD, lambda f: f.write(json.dumps(record).encode()))
    return model, grads, record, False
