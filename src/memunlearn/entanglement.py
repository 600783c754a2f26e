"""Entanglement of examples in the original model's embedding space (docs/methods.md §3).

Embeddings φ are the penultimate layer of the original model
(``training.loop.embed``). From them:

- for a split of D into R and F, the entanglement score ES (RUM paper):
  within-set variance over between-set distance. A large ES means R and F
  overlap in embedding space (hard to forget F without hurting R);
- per example, the Euclidean distance ‖φ(x) − c‖ to the global centroid c
  of D (score ``centroid_distance``);
- per example, the ES of its distance bin against the rest of D (score
  ``entanglement``): D is cut into equal-width bins of centroid distance (the
  RUM reference uses 15) and each bin's ES is measured. ES is not monotone in
  the distance (on the default MNIST model it rises and falls again over the
  bins), so entanglement levels are ranked by this measured ES, never by the
  distance itself: ``high`` takes the most entangled bins.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .data.splits import DatasetInfo, ImageSplit
from .training.loop import embed

SCORE_NAME = "entanglement"  # per example: the ES of its centroid-distance bin against the rest of D
DISTANCE_NAME = "centroid_distance"  # per example: ‖φ(x) − c‖
DEFAULT_BINS = 15  # the RUM reference's number of distance bins


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
    return pd.Series(distance, index=pd.Index(ids, name="example_id"), name=DISTANCE_NAME)


def _bin_of(distance: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(bin index per example (N,), edges (bins + 1,)) of ``bins`` equal-width distance bins."""
    if bins < 1:
        raise ValueError(f"partition.entanglement_bins must be >= 1, got {bins}")
    edges = np.linspace(distance.min(), distance.max(), bins + 1)
    return np.clip(np.searchsorted(edges, distance, side="right") - 1, 0, bins - 1), edges


def _binned(x: np.ndarray, ids, bins: int) -> tuple[np.ndarray, pd.DataFrame]:
    """(bin index per example (N,), one row per non-empty bin: bin, low, high, size, es)."""
    which, edges = _bin_of(centroid_distances(x, ids).to_numpy(), bins)
    rows = []
    for b in np.unique(which):
        inside = which == b
        es = entanglement_score(x[~inside], x[inside]) if (~inside).any() else float("nan")
        rows.append({"bin": int(b), "low": edges[b], "high": edges[b + 1], "size": int(inside.sum()), "es": es})
    return which, pd.DataFrame(rows)


def distance_bins(embeddings, example_ids, bins: int = DEFAULT_BINS) -> pd.DataFrame:
    """D cut into ``bins`` equal-width bins of centroid distance, each bin's ES against the rest.

    Columns: bin (0 = nearest the centroid), low, high (distance edges), size, es.
    Empty bins are left out; a bin holding all of D has no rest and gets ES NaN.
    """
    return _binned(_as_matrix(embeddings, "D"), example_ids, bins)[1]


def binned_entanglement(embeddings, example_ids, bins: int = DEFAULT_BINS) -> pd.Series:
    """Per example, the ES of its centroid-distance bin against the rest of D (score ``entanglement``)."""
    ids = np.asarray(example_ids, dtype=np.int64)
    which, table = _binned(_as_matrix(embeddings, "D"), ids, bins)
    es = table.set_index("bin")["es"].reindex(which).to_numpy()
    return pd.Series(es, index=pd.Index(ids, name="example_id"), name=SCORE_NAME)


def entanglement_score(retain, forget) -> float:
    """ES of R and F (docs/methods.md §3):

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
