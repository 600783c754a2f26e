"""RUM, the Refined-Unlearning Meta-algorithm (docs/methods.md §4), its variants and baselines.

A strategy decides how the refined forget subsets are unlearned:

- ``vanilla``: the plan's method on all of F at once;
- ``vanilla_budget``: ``vanilla`` with the optimization budget of the RUM
  run it is compared with (its epochs are the sum of the RUM steps' epochs):
  the control for "RUM wins because it trains longer";
- ``shuffle``: F split at random (seeded) into equal subsets, unlearned in
  sequence with the plan's method: the control for the refinement;
- ``rum_f``: the refined subsets low -> mid -> high, the plan's method at
  every step, with per-step hyperparameters (``subset_params``);
- ``rum``: the same sequence with a method per subset (``subset_methods``;
  left empty, the RUM paper's CIFAR-10 choice low: none, mid: finetune,
  high: salun) and per-step hyperparameters;
- ``rum_reference_retain``: ``rum`` with the reference code's retain set
  D \\ (F_1 ∪ … ∪ F_s) at step s (so early steps fine-tune on examples that
  are forgotten later).

Each step starts from the previous step's model. Except in
``rum_reference_retain``, the retain set is D \\ F at every step: the whole
forget set is never trained on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np
from tqdm import tqdm

from ..data.splits import ImageSplit
from ..partition import SUBSETS  # RUM order: low -> mid -> high
from ..seeding import derive_seed
from .base import METHODS, STRATEGIES, StepRecord, UnlearnContext, register_strategy
from .config import UnlearnPlan


@dataclass(frozen=True)
class Step:
    label: str  # for the record
    method: str
    params_key: str | None  # which subset_params block applies (None: only methods.<name>)
    forget: ImageSplit
    retain: ImageSplit
    epochs: int | None = None  # overrides the config's epochs (vanilla_budget)


def _run_steps(model, steps: list[Step], plan: UnlearnPlan, ctx: UnlearnContext):
    """Unlearn ``steps`` in order, each from the previous step's model (docs/methods.md §4, step 2)."""
    records = []
    for i, s in enumerate(tqdm(steps, "unlearning steps", unit="step", leave=False, disable=None)):
        config = plan.step_config(s.method, s.params_key)
        if s.epochs is not None:
            config = replace(config, epochs=s.epochs)
        step_ctx = replace(ctx, seed=derive_seed(ctx.seed, "rum_step", i))
        start = time.perf_counter()
        model = METHODS.get(plan.registered(s.method)).run(model, s.forget, s.retain, config, step_ctx)
        records.append(StepRecord(i, s.label, s.method, len(s.forget), time.perf_counter() - start))
    return model, records


def _present(subsets: Mapping[str, ImageSplit]) -> list[str]:
    """The non-empty refined subsets in RUM order low -> mid -> high."""
    return [s for s in SUBSETS if s in subsets and len(subsets[s])]


def _refined_steps(subsets, retain, plan: UnlearnPlan, per_subset_methods: bool) -> list[Step]:
    return [Step(s, plan.method_for(s) if per_subset_methods else plan.method, s, subsets[s], retain)
            for s in _present(subsets)]


def _all_at_once(model, subsets, retain, plan, ctx, epochs: int | None = None):
    forget = _concat([subsets[s] for s in SUBSETS if s in subsets])
    return _run_steps(model, [Step("all", plan.method, None, forget, retain, epochs)], plan, ctx)


@register_strategy("vanilla")
def vanilla(model, subsets, retain, plan, ctx):
    """All of F at once with ``methods.<method>`` (subset_params do not apply)."""
    return _all_at_once(model, subsets, retain, plan, ctx)


@register_strategy("vanilla_budget")
def vanilla_budget(model, subsets, retain, plan, ctx):
    """Control: all of F at once for as many epochs as ``rum_f`` spends over its steps (the sum of each
    step's epochs, subset_params included). Methods without epochs run as ``vanilla``."""
    steps = [plan.step_config(plan.method, s) for s in _present(subsets)]
    epochs = sum(c.epochs for c in steps) if steps and all(hasattr(c, "epochs") for c in steps) else None
    return _all_at_once(model, subsets, retain, plan, ctx, epochs)


@register_strategy("shuffle")
def shuffle(model, subsets, retain, plan, ctx):
    """Control: F permuted with a seed derived from ``ctx.seed`` and cut into as many equal parts
    as there are refined subsets, unlearned in sequence with the plan's method. Step k uses the
    per-step hyperparameters of the k-th refined subset, so shuffle differs from ``rum_f`` only in
    how F is split."""
    present = _present(subsets)
    if not present:
        return model, []
    forget = _concat([subsets[s] for s in present])
    rng = np.random.default_rng(derive_seed(ctx.seed, "rum/shuffle"))
    parts = np.array_split(rng.permutation(len(forget)), len(present))
    steps = [Step(f"random_{k + 1}", plan.method, key, forget.take(part), retain)
             for k, (key, part) in enumerate(zip(present, parts))]
    return _run_steps(model, steps, plan, ctx)


@register_strategy("rum_f")
def rum_f(model, subsets, retain, plan, ctx):
    """RUM^F: the plan's method at every step low -> mid -> high, per-step hyperparameters."""
    return _run_steps(model, _refined_steps(subsets, retain, plan, False), plan, ctx)


@register_strategy("rum", per_subset_methods=True)
def rum(model, subsets, retain, plan, ctx):
    """Full RUM: a method per subset (``subset_methods``, default the plan's) and per-step hyperparameters."""
    return _run_steps(model, _refined_steps(subsets, retain, plan, True), plan, ctx)


@register_strategy("rum_reference_retain", per_subset_methods=True)
def rum_reference_retain(model, subsets, retain, plan, ctx):
    """``rum`` with the reference code's retain set at step s: D \\ (F_1 ∪ … ∪ F_s) = R ∪ F_{s+1} ∪ … ∪ F_k.

    Kept only as a named variant (docs/methods.md §4, item 3): early steps train on examples forgotten later.
    """
    steps = _refined_steps(subsets, retain, plan, True)
    for i, s in enumerate(steps):
        steps[i] = replace(s, retain=_concat([retain] + [later.forget for later in steps[i + 1:]]))
    return _run_steps(model, steps, plan, ctx)


def run_strategy(name: str, model, subsets, retain, plan: UnlearnPlan, ctx: UnlearnContext):
    """Unlearn with strategy ``name``; ``model`` (unlearned in place) first takes the recipe's memory layout,
    as the original trained in it."""
    model.to(memory_format=ctx.recipe.memory_format)
    return STRATEGIES.get(name)(model, subsets, retain, plan, ctx)


def _concat(splits: list[ImageSplit]) -> ImageSplit:
    out = splits[0]
    for s in splits[1:]:
        out = out.concat(s)
    return out
