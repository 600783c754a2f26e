"""One source of defaults (docs/architecture.md rule 2): the config classes' defaults are the library's, and
params.yaml differs from them only where the pipeline deliberately chooses otherwise, listed below with why.

A new difference fails until it is listed (or the default or params.yaml changes); a listed key that no longer
differs fails until it is removed, so the table stays true. params.yaml never loses a key a stage declares.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from memunlearn.config import from_params
from memunlearn.params import METHODS_SECTION, SECTIONS
from memunlearn.unlearning import METHODS, UnlearnPlan

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())

_RECIPE = ("the pipeline's recipe, tuned for the small CNN on the embedded digits (15 epochs, batch 128, lr drop "
           "at 10, no weight decay so that it fits the planted noise); the class keeps a shorter generic recipe with "
           "the reference's weight decay, and the tests pass their own tiny one")
_GRID = "a grid of its own: GridConfig's defaults are the `ablations` grid's axes"
DELIBERATE = {  # params.yaml key -> why the pipeline differs from the class default
    "data.noise_fraction": "the pipeline plants label noise to check that memorization scores find it; "
                           "the library leaves a dataset as it is",
    "data.max_train": "2,000 of the 4,000 embedded digits: the default run fits in 10 minutes on 2 cores "
                      "(params/full.yaml runs all of them); the library uses a dataset whole",
    "data.validation_fraction": "the pipeline holds out a validation split for calibration (first_epoch_ga, "
                                "holdout_retrain); the library makes none unless asked",
    "train.epochs": _RECIPE,
    "train.batch_size": _RECIPE,
    "train.weight_decay": _RECIPE,
    "train.lr_milestones": _RECIPE,
    "train_records.curvature_estimators": "rademacher costs 5-8x the sign-gradient estimator (+45 s per run on "
                                          "2 cores); the class records both",
    "train_records.first_epoch_grads": "the pipeline also stores the input layer, for first_epoch_ga's layer "
                                       "ablation (methods.first_epoch_ga_input)",
    "memorize.recipe": "the subset models train in bf16 where the device has it (precision: auto): their scores sit "
                       "inside the fp32 run-to-run spread (docs/memorization-speed.md); the library's subset models "
                       "train with train's recipe",
    "partition.size": "7.5% of the default run's 2,000 training examples (the class default, 300, is 7.5% of 4,000)",
    "unlearn.strategy": "the hand-set experiment runs RUM^F with NegGrad+ (the proxies paper's setup); the class "
                        "default is full RUM with the reference per-subset methods",
    "ablations.partition": "states the forget-set size every cell shares (150, as partition.size) in the grid",
    "ablations.kinds": "the default run tests RUM and its controls on the mixed set only; `make grids-large` adds the rest",
    "levels.kinds": _GRID,
    "levels.strategies": _GRID,
    "levels.partition": _GRID,
    "rum_compare.group_scores": _GRID,
    "rum_compare.kinds": _GRID,
    "rum_compare.strategies": _GRID,
    "rum_compare.partition": _GRID,
    "rum_compare.fixed_group_score": "the claims compare RUM driven by a proxy with RUM driven by exact scores on "
                                     "the same forget set and oracle (docs/methods.md §7)",
    "entanglement.group_scores": _GRID,
    "entanglement.kinds": _GRID,
    "entanglement.strategies": _GRID,
    "entanglement.partition": _GRID,
    "levels_clean.kinds": _GRID,
    "levels_clean.strategies": _GRID,
    "levels_clean.partition": _GRID,
    "tuned.methods": _GRID,
    "tuned.kinds": _GRID,
    "tuned.strategies": _GRID,
    "tuned.first_method_only": _GRID,
    "tuned.partition": _GRID,
    "tune.spaces": "the searched ranges are the pipeline's choice per method (docs/params.md); the class has none",
    "methods.del.epochs": "10 epochs instead of the reference's 30: the CPU time budget of the default run",
    "methods.first_epoch_ga_head.layers": "a named variant of the layer ablation: its layers are the point",
    "methods.first_epoch_ga_penultimate.layers": "a named variant of the layer ablation: its layers are the point",
    "methods.first_epoch_ga_input.layers": "a named variant of the layer ablation: its layers are the point",
}


def differences(config, default, prefix: str) -> set[str]:
    return {f"{prefix}.{f.name}" for f in dataclasses.fields(default)
            if getattr(config, f.name) != getattr(default, f.name)}


def pipeline_differences() -> set[str]:
    """Every params.yaml key whose typed value differs from its config class's default."""
    found = set()
    for section, cls in SECTIONS.items():
        found |= differences(from_params(cls, PARAMS[section], section), cls(), section)
    blocks = PARAMS[METHODS_SECTION]
    for name in blocks:
        plan = UnlearnPlan(name, blocks)
        default = METHODS.get(plan.registered(name)).config_cls()
        found |= differences(plan.step_config(name, None), default, f"{METHODS_SECTION}.{name}")
    return found


def test_params_yaml_differs_from_the_defaults_only_where_listed():
    found = pipeline_differences()
    unlisted = sorted(found - set(DELIBERATE))
    assert not unlisted, (f"params.yaml differs from the config class default at {unlisted}: make the default "
                          "the pipeline's value, drop the key from params.yaml (if no stage declares it), or list "
                          "it in DELIBERATE with the reason")
    stale = sorted(set(DELIBERATE) - found)
    assert not stale, f"DELIBERATE lists {stale}, which no longer differ from the default; remove them"


def test_every_reason_is_written_down():
    assert all(len(reason) > 20 for reason in DELIBERATE.values())


def test_params_yaml_keeps_every_key_a_stage_declares():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    declared = {key for stage in stages.values() for key in stage.get("params", [])
                if isinstance(key, str) and "${" not in key}
    missing = []
    for key in sorted(declared):
        block = PARAMS
        for part in key.split("."):
            if not isinstance(block, dict) or part not in block:
                missing.append(key)
                break
            block = block[part]
    assert not missing, f"dvc.yaml declares params {missing} that params.yaml lacks"
