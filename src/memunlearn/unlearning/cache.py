"""Unlearning runs by content: a run one stage computed is loaded, not repeated, by the next.

The ``unlearn`` stage, the ``ablations`` grid's cell with the same forget set,
method, strategy and seed, and ``forgetting_quality``'s unlearned copies run
the same unlearning. ``cached_strategy`` keys a run by everything that
determines its model (``run_key``) and keeps the model, its steps and its
seconds in a local folder, as ``training/oracle.py``'s ``cached_oracle`` does
for retrain oracles.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ..data.base import ExampleSplit
from ..io import atomic_write
from ..models.base import architecture_files
from ..partition import SUBSETS
from ..provenance import PACKAGE_ROOT, imported_files, source_fingerprint
from ..training.recipe import recipe_identity, resolved
from .base import STRATEGIES, StepRecord, UnlearnContext
from .config import UnlearnPlan
from .first_epoch_ga import LANGUAGE_MODEL_ASCENT
from .rum import run_strategy


def _weights_digest(model: nn.Module) -> str:
    """Over the model's parameters and buffers by name, in a layout-independent form."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _runnable(strategy: str, plan: UnlearnPlan) -> set[str]:
    """The ``methods`` blocks ``strategy`` can run under ``plan``: its method, and per subset where it has them."""
    per_subset = STRATEGIES.get(strategy).per_subset_methods
    return {plan.method, *((plan.method_for(s) for s in SUBSETS) if per_subset else ())}


def _plan_identity(strategy: str, plan: UnlearnPlan) -> dict:
    """What of the plan ``strategy`` reads: the method, per-step hyperparameters, per-subset methods where the
    strategy has them, and only the ``methods`` blocks of the methods it can run."""
    per_subset = STRATEGIES.get(strategy).per_subset_methods
    names = _runnable(strategy, plan)
    return {"method": plan.method, "subset_methods": dict(plan.subset_methods) if per_subset else {},
            "subset_params": {k: dict(v) for k, v in plan.subset_params.items()},
            "blocks": {name: dict(plan.method_params.get(name) or {}) for name in sorted(names)}}


def _context_identity(ctx: UnlearnContext, retrains: bool) -> dict:
    """What a method reads from its context: seed, recipe, data info (normalization; a text run's vocabulary),
    held-out split, first-epoch gradients (and all-epochs ones, a language model's) by content; ``retrains`` (the
    plan can run ``retrain``): the oracle recipe where it differs from the original's, so an ``oracle.recipe`` edit
    reruns no other method."""
    grads = ctx.first_epoch_grads
    oracle = ({"oracle_recipe": recipe_identity(resolved(ctx.oracle_recipe, ctx.device))}
              if retrains and ctx.oracle_recipe is not None else {})
    return {**oracle, "seed": ctx.seed, "recipe": recipe_identity(resolved(ctx.recipe, ctx.device)),
            "info": dataclasses.asdict(ctx.info), "first_epoch_grads": grads.fingerprint() if grads else None,
            **({"all_epochs_grads": ctx.all_epochs_grads.fingerprint()} if ctx.all_epochs_grads is not None else {}),
            "heldout": ctx.heldout.fingerprint() if ctx.heldout is not None else None}


def run_key(strategy: str, model: nn.Module, subsets: Mapping[str, ExampleSplit], retain: ExampleSplit,
            plan: UnlearnPlan, ctx: UnlearnContext) -> str:
    """16 hex digits over the original's weights, F's subsets and R by content (image or text splits alike:
    ``fingerprint``), the strategy, the plan, the context and the code that unlearns."""
    # the methods' code, with the language-model ascent first_epoch_ga imports by name
    ascent = PACKAGE_ROOT.joinpath(*LANGUAGE_MODEL_ASCENT.split(".")[1:]).with_suffix(".py")
    code = source_fingerprint(imported_files(PACKAGE_ROOT / "unlearning" / "__init__.py",
                                             PACKAGE_ROOT / "unlearning" / "cache.py", ascent,
                                             *architecture_files([ctx.recipe.model])))
    identity = {"strategy": strategy, "model": _weights_digest(model),
                "subsets": {name: subsets[name].fingerprint() for name in SUBSETS if name in subsets},
                "retain": retain.fingerprint(), "plan": _plan_identity(strategy, plan),
                "context": _context_identity(ctx, "retrain" in {plan.registered(n) for n in _runnable(strategy, plan)}),
                "code": code}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=list).encode()).hexdigest()[:16]


def _run_in_place(strategy: str, model: nn.Module, subsets, retain, plan, ctx) -> list[StepRecord]:
    """``run_strategy`` with its result in ``model`` itself: a method that builds a new model (``retrain``)
    hands its weights back, so a caller that keeps ``model`` keeps the unlearned one."""
    unlearned, steps = run_strategy(strategy, model, subsets, retain, plan, ctx)
    if unlearned is not model:
        model.load_state_dict(unlearned.state_dict())
    return steps


def cached_strategy(strategy: str, model: nn.Module, subsets: Mapping[str, ExampleSplit], retain: ExampleSplit,
                    plan: UnlearnPlan, ctx: UnlearnContext, cache: Path | None
                    ) -> tuple[nn.Module, list[StepRecord], float, bool]:
    """``run_strategy``, or its result from ``cache`` when the same run (``run_key``) was made before.

    Returns (unlearned model, its steps, the unlearning seconds, whether it came from the cache); a cached run
    keeps the seconds it took, so cost comparisons do not change with caching. ``model`` is unlearned in place
    either way. ``cache=None`` always runs.
    """
    if cache is None:
        start = time.perf_counter()
        steps = _run_in_place(strategy, model, subsets, retain, plan, ctx)
        return model, steps, time.perf_counter() - start, False
    folder = Path(cache) / run_key(strategy, model, subsets, retain, plan, ctx)
    record = folder / "run.json"
    if record.exists():
        try:
            saved = json.loads(record.read_text())
            state = torch.load(folder / "model.pt", map_location=ctx.device, weights_only=True)
            model.to(ctx.device, memory_format=ctx.recipe.memory_format).load_state_dict(state)
            return model, [StepRecord(**s) for s in saved["steps"]], float(saved["seconds"]), True
        except (RuntimeError, FileNotFoundError, KeyError, TypeError, ValueError):
            pass  # unreadable: run it again, overwriting
    start = time.perf_counter()
    steps = _run_in_place(strategy, model, subsets, retain, plan, ctx)
    seconds = time.perf_counter() - start
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "model.pt", lambda f: torch.save(model.state_dict(), f))
    saved = {"seconds": seconds, "steps": [dataclasses.asdict(s) for s in steps]}
    atomic_write(record, lambda f: f.write(json.dumps(saved).encode()))  # last: marks it complete
    return model, steps, seconds, False
