"""Params section ``unlearn`` (``UnlearnConfig``) and the plan it resolves to with ``methods.<name>``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..config import ConfigError, from_params
from ..partition import SUBSETS  # RUM order: low -> mid -> high
from ..registry import UnknownNameError
from .base import METHODS, STRATEGIES
from .first_epoch_ga import STORED

REFERENCE_SUBSET_METHODS = {"low": "none", "mid": "finetune", "high": "salun"}  # RUM paper, CIFAR-10


@dataclass(frozen=True)
class UnlearnPlan:
    method: str  # the method for every step unless overridden
    method_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # methods.<name> blocks
    subset_methods: Mapping[str, str] = field(default_factory=dict)  # rum, rum_reference_retain: {subset: method}
    subset_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # {subset: {hyperparam: value}}

    def validate(self) -> None:
        self.check_subset_maps()
        for name in (self.method, *self.subset_methods.values()):
            self.registered(name)

    def check_subset_maps(self) -> None:
        """``subset_methods`` / ``subset_params`` are keyed by RUM subset (method names are checked apart)."""
        for key, mapping in (("subset_methods", self.subset_methods), ("subset_params", self.subset_params)):
            if not isinstance(mapping, Mapping):
                raise ConfigError(f"unlearn.{key} must be a mapping keyed by subset, e.g. {{high: ...}}, "
                                  f"got {mapping!r}")
            unknown = sorted(set(mapping) - set(SUBSETS))
            if unknown:
                raise ConfigError(f"unlearn.{key} has unknown subset(s) {unknown}; valid: {list(SUBSETS)}")
        for subset, block in self.subset_params.items():
            if not isinstance(block, Mapping):
                raise ConfigError(f"unlearn.subset_params.{subset} must map hyperparameters to values, "
                                  f"e.g. {{lr: 0.001}}, got {block!r}")

    def registered(self, name: str) -> str:
        """The registered method that block ``methods.<name>`` configures: its ``method`` key, else ``name``.
        Named blocks give one method several hyperparameter settings (a grid's ablation axis)."""
        block = self.method_params.get(name)
        registered = block.get("method", name) if isinstance(block, Mapping) else name
        if registered not in METHODS:
            raise UnknownNameError(f"unknown unlearning method {registered!r}; choose one of: "
                                   f"{', '.join(METHODS.names())}, or a methods.<name> block with a method: key",
                                   registered)
        return registered

    def method_for(self, subset: str | None) -> str:
        """The method of a ``rum`` step: ``subset_methods`` (empty: REFERENCE_SUBSET_METHODS), else the plan's."""
        chosen = self.subset_methods or REFERENCE_SUBSET_METHODS
        return chosen.get(subset, self.method) if subset else self.method

    def step_config(self, method_name: str, subset: str | None) -> Any:
        """``methods.<name>`` with ``subset_params.<subset>`` merged over it (subset keys win)."""
        base = {k: v for k, v in (self.method_params.get(method_name) or {}).items() if k != "method"}
        override = dict(self.subset_params.get(subset) or {}) if subset else {}
        config_cls = METHODS.get(self.registered(method_name)).config_cls
        if not override:
            return from_params(config_cls, base, f"methods.{method_name}")
        try:
            return from_params(config_cls, {**base, **override}, f"unlearn.subset_params.{subset}")
        except ConfigError as exc:  # say where the other values came from
            where = f"unlearn.subset_params.{subset}"
            raise ConfigError("\n".join(
                f"{line} (merged over methods.{method_name})" if line.startswith(where)
                else f"{line} ({where} merged over methods.{method_name})" for line in str(exc).splitlines())) from None


@dataclass(frozen=True)
class UnlearnConfig:
    """Params section ``unlearn``; method hyperparameters live in ``methods.<name>``."""

    method: str = "neggrad_plus"
    strategy: str = "rum"  # a STRATEGIES name: vanilla | shuffle | rum_f | rum | rum_reference_retain
    subset_methods: Mapping[str, str] = field(default_factory=dict)  # rum: e.g. {low: none, mid: finetune}
    subset_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # e.g. {high: {lr: 0.001}}
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        STRATEGIES.get(self.strategy)
        plan = UnlearnPlan(self.method, {}, self.subset_methods, self.subset_params)
        plan.check_subset_maps()
        if all(name in METHODS for name in (self.method, *self.subset_methods.values())):
            self.plan({})  # hyperparameters against the methods' defaults, before any work
        # else a named methods block: plan(methods) checks it against its block

    def plan(self, method_params: Mapping[str, Mapping[str, Any]]) -> UnlearnPlan:
        plan = UnlearnPlan(self.method, dict(method_params), self.subset_methods, self.subset_params)
        plan.validate()
        per_subset = STRATEGIES.get(self.strategy).per_subset_methods
        plan.step_config(plan.method, None)  # bad hyperparameters fail before any work
        for subset in SUBSETS:
            plan.step_config(plan.method_for(subset) if per_subset else plan.method, subset)
        return plan


def init_conflicts(init: str, named: list[tuple[str, str]], blocks: Mapping[str, Any]) -> list[str]:
    """One line per (params key, method block) of ``named`` that ascends along gradients recorded while the
    original trained (first_epoch_ga with ``gradients`` first_epoch or all_epochs; a language model's
    ``last_epoch`` needs none), when ``train.init`` loads the original instead of training it; [] when ``init``
    is ""."""
    if not init:
        return []
    out = []
    for key, name in named:
        plan = UnlearnPlan(name, blocks)
        try:
            source = plan.step_config(name, None).gradients if plan.registered(name) == "first_epoch_ga" else None
        except (UnknownNameError, ValueError):  # the block's own problem, reported by its check
            continue
        if source in STORED:
            out.append(f"{key}: {name!r} (first_epoch_ga) ascends along {source.replace('_', '-')} gradients recorded "
                       f"while training the original, but train.init loads a model trained elsewhere ({init!r}); "
                       "choose another method or set train.init to \"\" to train the original here")
    return out
