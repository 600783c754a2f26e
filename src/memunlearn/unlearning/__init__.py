"""Unlearning methods (docs/methods.md §5) and RUM strategies (§4), by registry.

``base.py`` holds the registries and their entry types, ``config.py`` the
``unlearn`` section; importing a method's module (or rum.py, the
strategies) registers it.
"""
from .base import METHODS, STRATEGIES, Method, StepRecord, Strategy, UnlearnContext, register_method, register_strategy
from .config import REFERENCE_SUBSET_METHODS, UnlearnConfig, UnlearnPlan
from . import (  # noqa: F401  (one module per method; importing registers it)
    del_, finetune, first_epoch_ga, influence, l1_sparse, neggrad, neggrad_plus, none, random_label, retrain, salun,
    scrub,
)
from .rum import run_strategy

__all__ = ["METHODS", "Method", "REFERENCE_SUBSET_METHODS", "STRATEGIES", "StepRecord", "Strategy",
           "UnlearnConfig", "UnlearnContext", "UnlearnPlan", "register_method", "register_strategy", "run_strategy"]
