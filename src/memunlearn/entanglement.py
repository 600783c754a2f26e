"""Entanglement of examples in the original model's embedding space (METHODS.md §3).

Embeddings φ are the penultimate layer of the original model
(``training.loop.embed``). Two things are computed from them:

- per example, the Euclidean distance ‖φ(x) − c‖ to the global centroid
  c of D: the ``entanglement`` score that partition.py ranks to build
  entanglement groups (``partition.group_score: entanglement``);
- for a split of D into R and F, the entanglement score ES (RUM paper):
  within-set variance over between-set distance. A large ES means R and F
  overlap in embedding space (hard to forget F without hurting R).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .data.splits import DatasetInfo, ImageSplit
from .training.loop import embed

SCORE_NAME = "entanglement"  # the per-example score: distance to the global centroid


def _as_matrix(embeddings, what: str) -> np.ndarray:
    x = np.asarray(embeddings.detach().cpu() if isinstance(embeddings, torch.Tensor) else embeddings,
                   dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"{what} embeddings must be a non-empty (N, D) array, got shape {x.shape}")
    return x


def centroid_distances(embeddings, example_ids) -> pd.Series:
    """‖φ(x) − c‖₂ per example, c = mean embedding of all rows; indexed by example_id. (N, D) -> (N,)."""
    x = _as_matrix(embeddings, "D")
    ids = np.asarray(example_ids, dtype=np.int64)
    if len(ids) != len(x):
        raise ValueError(f"{len(ids)} example_ids for {len(x)} embeddings; pass one id per row")
    distance = np.linalg.norm(x - x.mean(axis=0), axis=1)
    return pd.Series(distance, index=pd.Index(ids, name="example_id"), name=SCORE_NAME)


def entanglement_score(retain, forget) -> float:
    """ES of R and F (METHODS.md §3):

        ES = [mean_R ‖φ−μ_R‖² + mean_F ‖φ−μ_F‖²] / [½(‖μ_R−μ‖² + ‖μ_F−μ‖²)],  μ = ½(μ_R + μ_F)

    ``retain`` (N_R, D) and ``forget`` (N_F, D) are embeddings. Returns inf when
    the two means coincide (R and F indistinguishable by their centres).
    """
    r, f = _as_matrix(retain, "retain"), _as_matrix(forget, "forget")
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"retain and forget embeddings differ in width ({r.shape[1]} vs {f.shape[1]})")
    mu_r, mu_f = r.mean(axis=0), f.mean(axis=0)  # (D,)
    mu = 0.5 * (mu_r + mu_f)
    within = ((r - mu_r) ** 2).sum(axis=1).mean() + ((f - mu_f) ** 2).sum(axis=1).mean()
    between = 0.5 * (((mu_r - mu) ** 2).sum() + ((mu_f - mu) ** 2).sum())
    return float(within / between) if between > 0 else float("inf")


def split_entanglement(embeddings, example_ids, forget_ids) -> float:
    """ES of F = rows whose id is in ``forget_ids`` against R = the other rows."""
    x = _as_matrix(embeddings, "D")
    in_forget = np.isin(np.asarray(example_ids, dtype=np.int64), np.asarray(forget_ids, dtype=np.int64))
    if not in_forget.any() or in_forget.all():
        raise ValueError("the forget set must be a non-empty proper subset of D to compute its entanglement score")
    return entanglement_score(x[~in_forget], x[in_forget])


def embed_split(model: torch.nn.Module, data: ImageSplit, info: DatasetInfo, device: torch.device) -> np.ndarray:
    """Penultimate-layer embeddings (N, D) of ``data`` under ``model`` (eval mode), rows in ``data``'s order."""
    return embed(model, data, info, device).double().numpy()
