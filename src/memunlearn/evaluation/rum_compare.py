"""RUM driven by different scores, side by side (scalability paper's central table).

The forget set F and the oracle stay fixed; only the score that refines F
into low/mid/high changes (exact memorization or a proxy), plus ``vanilla``
(all of F at once) as the baseline. Each row: the unlearned model's metrics
and ToW / ToW-MIA against the same retrain oracle.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..config import check_positive
from ..data.splits import ImageSplit
from ..partition import Score, apply_partition, refine
from ..unlearning import METHODS, UnlearnContext, UnlearnPlan, run_strategy
from .report import EvaluateConfig, model_metrics
from .tow import tow, tow_mia


@dataclass(frozen=True)
class RumCompareConfig:
    """Params section ``rum_compare``."""

    method: str = "neggrad_plus"  # run at every RUM step (rum_f style) and by vanilla
    scores: tuple[str, ...] = ("exact", "confidence")  # each drives one RUM refinement
    include_vanilla: bool = True
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        METHODS.get(self.method)
        check_positive(len(self.scores) + self.include_vanilla, "rum_compare: scores or include_vanilla")


@dataclass(frozen=True)
class Variant:
    name: str  # "rum[exact]", "vanilla", ...
    strategy: str
    forget_table: pd.DataFrame = field(repr=False)


def variants(forget_ids: np.ndarray, scores: Mapping[str, Score], include_vanilla: bool) -> list[Variant]:
    out = [Variant(f"rum[{name}]", "rum", refine(forget_ids, score)) for name, score in scores.items()]
    if include_vanilla:  # vanilla ignores the refinement; any split of F serves
        first = next(iter(scores.values()), None)
        table = refine(forget_ids, first) if first else pd.DataFrame(
            {"example_id": forget_ids, "subset": "mid", "refine_score": np.nan})
        out.append(Variant("vanilla", "vanilla", table))
    return out


def compare_refinements(
    original: nn.Module,
    train: ImageSplit,
    test: ImageSplit,
    oracle: nn.Module,
    runs: list[Variant],
    plan: UnlearnPlan,
    ctx: UnlearnContext,
    eval_config: EvaluateConfig,
    device: torch.device,
) -> pd.DataFrame:
    """Unlearn with every variant from the same original model; one metrics row each."""
    rows = []
    oracle_metrics = None
    for variant in runs:
        parts = apply_partition(train, variant.forget_table)
        if oracle_metrics is None:
            oracle_metrics = model_metrics(oracle, parts.forget, parts.retain, test, parts.subsets, ctx.info,
                                           eval_config, device)
        start = time.perf_counter()
        model, _ = run_strategy(variant.strategy, copy.deepcopy(original), parts.subsets, parts.retain, plan, ctx)
        seconds = time.perf_counter() - start
        metrics = model_metrics(model, parts.forget, parts.retain, test, parts.subsets, ctx.info, eval_config, device)
        rows.append({"variant": variant.name, "method": plan.method, **metrics,
                     "tow": tow(metrics, oracle_metrics), "tow_mia": tow_mia(metrics, oracle_metrics),
                     "seconds": seconds})
    return pd.DataFrame(rows)
