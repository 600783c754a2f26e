"""RUM, the Refined-Unlearning Meta-algorithm (METHODS.md §4), and its baselines.

A strategy decides how the refined forget subsets are unlearned:
``vanilla`` runs one method on all of F at once; ``rum`` runs the subsets
in sequence low -> mid -> high, each step starting from the previous step's
model, each subset with its own method (default: the plan's method). The
retain set is D \\ F at every step: the whole forget set is never trained on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from torch import nn

from ..data.splits import ImageSplit
from ..registry import Registry
from ..seeding import derive_seed
from . import METHODS, UnlearnContext

from ..partition import SUBSETS  # noqa: E402  (RUM order: low -> mid -> high)


@dataclass(frozen=True)
class UnlearnPlan:
    method: str  # the method for every step unless overridden
    method_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # methods.<name> blocks
    subset_methods: Mapping[str, str] = field(default_factory=dict)  # rum only: {subset: method}

    def validate(self) -> None:
        METHODS.get(self.method)
        unknown = sorted(set(self.subset_methods) - set(SUBSETS))
        if unknown:
            raise ValueError(f"unlearn.subset_methods has unknown subset(s) {unknown}; valid: {list(SUBSETS)}")
        for name in self.subset_methods.values():
            METHODS.get(name)

    def method_for(self, subset: str | None) -> str:
        return self.subset_methods.get(subset, self.method) if subset else self.method


@dataclass(frozen=True)
class UnlearnConfig:
    """Params section ``unlearn``; method hyperparameters live in ``methods.<name>``."""

    method: str = "neggrad_plus"
    strategy: str = "rum"  # a STRATEGIES name: vanilla | rum
    subset_methods: Mapping[str, str] = field(default_factory=dict)  # rum: e.g. {low: none, mid: finetune}
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        STRATEGIES.get(self.strategy)
        self.plan({}).validate()

    def plan(self, method_params: Mapping[str, Mapping[str, Any]]) -> UnlearnPlan:
        plan = UnlearnPlan(self.method, dict(method_params), dict(self.subset_methods))
        for name in {plan.method, *plan.subset_methods.values()}:  # bad hyperparameters fail before any work
            METHODS.get(name).config(plan.method_params.get(name))
        return plan


@dataclass(frozen=True)
class StepRecord:
    step: int
    subset: str  # "all" for vanilla
    method: str
    n_forget: int
    seconds: float


Strategy = Callable[[nn.Module, Mapping[str, ImageSplit], ImageSplit, UnlearnPlan, UnlearnContext],
                    tuple[nn.Module, list[StepRecord]]]
STRATEGIES: Registry[Strategy] = Registry("RUM strategy")


def _run_step(step: int, subset: str, method_name: str, model, forget, retain, plan, ctx):
    method = METHODS.get(method_name)
    config = method.config(plan.method_params.get(method_name))
    step_ctx = replace(ctx, seed=derive_seed(ctx.seed, "rum_step", step))
    start = time.perf_counter()
    model = method.run(model, forget, retain, config, step_ctx)
    return model, StepRecord(step, subset, method_name, len(forget), time.perf_counter() - start)


@STRATEGIES.register("vanilla")
def vanilla(model, subsets, retain, plan, ctx):
    forget = _concat([subsets[s] for s in SUBSETS if s in subsets])
    model, record = _run_step(0, "all", plan.method, model, forget, retain, plan, ctx)
    return model, [record]


@STRATEGIES.register("rum")
def rum(model, subsets, retain, plan, ctx):
    records = []
    for step, subset in enumerate(s for s in SUBSETS if s in subsets and len(subsets[s])):
        model, record = _run_step(step, subset, plan.method_for(subset), model, subsets[subset], retain, plan, ctx)
        records.append(record)
    return model, records


def run_strategy(name: str, model, subsets, retain, plan: UnlearnPlan, ctx: UnlearnContext):
    return STRATEGIES.get(name)(model, subsets, retain, plan, ctx)


def _concat(splits: list[ImageSplit]) -> ImageSplit:
    out = splits[0]
    for s in splits[1:]:
        out = out.concat(s)
    return out
