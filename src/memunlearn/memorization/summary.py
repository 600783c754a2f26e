"""The memorize stage's metrics: what the exact scores look like and what the K subset models cost.

Not imported by the package ``__init__``: only the memorize stage reads it,
so editing it reruns nothing else (docs/architecture.md rule 7).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

import pandas as pd
import torch

from ..training.recipe import TrainConfig
from .agreement import planted_auroc
from .exact import ExactConfig, Execution, SubsetRuns


def memorize_summary(result: SubsetRuns, scores: pd.DataFrame, planted_ids, stability: Mapping[str, Any],
                     config: ExactConfig, recipe: TrainConfig, key: str, seconds: float,
                     device: torch.device, execution: Execution) -> dict[str, Any]:
    """Mean score, missing share, how well the scores find the planted label noise, stability over K
    (``stability``, from convergence.py), and the cost: ``seconds`` is this run's wall time on ``execution``."""
    by_id = scores.set_index("example_id")
    mem = by_id["mem"]
    return {
        "num_models": len(result.runs),  # K (reached, under num_models: auto)
        "num_models_auto": config.adaptive,
        "stable": result.stable,  # auto: split-half Pearson r of mem_prob reached stable_pearson before max_models
        "stable_pearson": config.stable_pearson if config.adaptive else None,
        "precision": recipe.precision,  # concrete (auto resolved for this device)
        "models_trained": len(result.trained),
        "models_reused": len(result.reused),
        "store_key": key,
        "mean_mem": float(mem.mean()),
        "missing_fraction": float(mem.isna().mean()),
        "planted_noise_auroc": planted_auroc(mem, planted_ids),  # 0/1 estimator (exact)
        "planted_noise_auroc_prob": planted_auroc(by_id["mem_prob"], planted_ids),  # true-class prob. (exact_prob)
        "min_mem_se": float(by_id["mem_se"].min()),
        **stability,
        "seconds": seconds,  # small when models are reused
        **model_cost(result),
        "examples_processed": int(sum(result.runs[k].mask.sum() for k in result.trained)) * recipe.epochs,
        "models_per_hour": len(result.trained) / seconds * 3600 if result.trained else None,
        "models_per_job": config.models_per_job(device),
        "runner": execution.runner,
        "workers": execution.workers,
    }


def model_cost(result: SubsetRuns) -> dict[str, Any]:
    """``compute_seconds``: the K models' own training cost (the exact method's price, which proxy_study
    compares against). Each model's seconds come from this run or the store's timings ledger; models with
    none (pulled from a DVC remote: the store's files hold no times) count at the timed models' mean, and
    ``models_timed`` says how many were timed. None when no model was."""
    seconds = np.array([run.seconds for run in result.runs], dtype=float)
    timed = np.isfinite(seconds)
    cost = float(seconds[timed].sum() + seconds[timed].mean() * (~timed).sum()) if timed.any() else None
    return {"compute_seconds": cost, "models_timed": int(timed.sum())}
