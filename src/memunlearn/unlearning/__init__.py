"""Unlearning methods (docs/methods.md §5) and RUM strategies (§4), by registry.

A method is one module: a frozen config dataclass (its params block in
params.yaml, ``methods.<name>``) and a function
``(model, forget, retain, config, context) -> model``. ``forget`` and
``retain`` are ``ImageSplit``s; the retain set is always D \\ F.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..config import from_params
from ..data.splits import DatasetInfo, ImageSplit
from ..registry import Registry
from ..training.first_epoch_grads import FirstEpochGrads
from ..training.recipe import TrainConfig


@dataclass(frozen=True)
class UnlearnContext:
    info: DatasetInfo
    recipe: TrainConfig  # the original training recipe (retrain reuses it)
    device: torch.device
    seed: int  # every method derives its randomness from this
    first_epoch_grads: FirstEpochGrads | None = None  # per-example first-epoch gradients (first_epoch_ga)
    heldout: ImageSplit | None = None  # data the original never trained on, for calibration: the validation split


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


from . import del_, finetune, first_epoch_ga, influence, l1_sparse, neggrad, neggrad_plus, none, random_label, retrain, salun, scrub  # noqa: E402,F401,E501
from .rum import STRATEGIES, StepRecord, UnlearnPlan, run_strategy  # noqa: E402

__all__ = ["METHODS", "Method", "STRATEGIES", "StepRecord", "UnlearnContext", "UnlearnPlan", "register_method",
           "run_strategy"]
