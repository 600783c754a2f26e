"""The unlearning registries: methods (docs/methods.md §5) and RUM strategies (§4), with their entry types.

A method is one module: a frozen config dataclass (its params block in
params.yaml, ``methods.<name>``) and a function
``(model, forget, retain, config, context) -> model``, registered with
``@register_method``. A strategy (``@register_strategy``, rum.py) decides
how the refined forget subsets are unlearned. ``forget`` and ``retain``
are ``ImageSplit``s; the retain set is always D \\ F.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

import torch
from torch import nn

from ..config import from_params
from ..data.splits import DatasetInfo, ImageSplit
from ..registry import Registry
from ..training.first_epoch_grads import FirstEpochGrads
from ..training.recipe import TrainConfig

if TYPE_CHECKING:  # config.py imports this module
    from .config import UnlearnPlan


@dataclass(frozen=True)
class UnlearnContext:
    info: DatasetInfo
    recipe: TrainConfig  # the original training recipe
    device: torch.device
    seed: int  # every method derives its randomness from this
    first_epoch_grads: FirstEpochGrads | None = None  # per-example first-epoch gradients (first_epoch_ga)
    heldout: ImageSplit | None = None  # data the original never trained on, for calibration: the validation split
    oracle_recipe: TrainConfig | None = None  # recipe_for(params, "oracle") where it differs from ``recipe``
    all_epochs_grads: Any = None  # a language model's per-sequence gradients summed over every epoch
    #                               (modality/text/lm_grads.py; first_epoch_ga ``gradients: all_epochs``)

    def stored_grads(self, source: str):
        """The gradient store of a first_epoch_ga ``gradients`` source: first_epoch, all_epochs; None for
        last_epoch (taken at unlearning time) or when not recorded."""
        return {"first_epoch": self.first_epoch_grads, "all_epochs": self.all_epochs_grads}.get(source)

    @property
    def retrain_recipe(self) -> TrainConfig:
        """What a model retrained on R trains with (the ``retrain`` method, LiRA's retrained copies)."""
        return self.oracle_recipe if self.oracle_recipe is not None else self.recipe

    def with_oracle_recipe(self, oracle_recipe: TrainConfig) -> "UnlearnContext":
        """This context retraining with ``oracle_recipe`` (None kept where it is the original's: same keys)."""
        return dataclasses.replace(self, oracle_recipe=None if oracle_recipe == self.recipe else oracle_recipe)


@dataclass(frozen=True)
class Method:
    name: str
    config_cls: type
    run: Callable[[nn.Module, ImageSplit, ImageSplit, Any, UnlearnContext], nn.Module]
    summary: str

    def config(self, params: Mapping[str, Any] | None) -> Any:
        return from_params(self.config_cls, params, f"methods.{self.name}")


METHODS: Registry[Method] = Registry("unlearning method")


def register_method(name: str, config_cls: type, summary: str):
    def decorator(fn):
        METHODS.register(name, Method(name, config_cls, fn, summary))
        return fn

    return decorator


@dataclass(frozen=True)
class StepRecord:
    step: int
    subset: str  # low | mid | high; "all" for vanilla; "random_<k>" for shuffle
    method: str
    n_forget: int
    seconds: float


Run = Callable[[nn.Module, Mapping[str, ImageSplit], ImageSplit, "UnlearnPlan", UnlearnContext],
               tuple[nn.Module, list[StepRecord]]]


@dataclass(frozen=True)
class Strategy:
    run: Run
    per_subset_methods: bool  # whether unlearn.subset_methods applies

    def __call__(self, model, subsets, retain, plan, ctx):
        return self.run(model, subsets, retain, plan, ctx)


STRATEGIES: Registry[Strategy] = Registry("RUM strategy")


def register_strategy(name: str, per_subset_methods: bool = False):
    def decorator(fn: Run) -> Run:
        STRATEGIES.register(name, Strategy(fn, per_subset_methods))
        return fn

    return decorator
