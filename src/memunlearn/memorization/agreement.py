"""How well one per-example score agrees with another (docs/methods.md §2)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def _stats():
    """scipy.stats, imported on first use: 1.3 s that every stage importing the partition code would pay."""
    from scipy import stats

    return stats


def aligned(score: pd.Series, reference: pd.Series) -> pd.DataFrame:
    """Columns ``s`` and ``r`` over the example_ids both have a value for."""
    return pd.concat({"s": score, "r": reference}, axis=1).dropna()


def spearman(score: pd.Series, reference: pd.Series) -> float:
    """Spearman rho over shared examples; NaN with fewer than 3."""
    both = aligned(score, reference)
    return float(_stats().spearmanr(both["s"], both["r"]).statistic) if len(both) >= 3 else float("nan")


def agreement(score: pd.Series, reference: pd.Series, top_n: int) -> dict[str, float]:
    """Spearman rho, Pearson r and precision@N of ``score`` against ``reference``.

    Both are indexed by example_id; examples missing in either are dropped.
    precision@N = |top-N by score ∩ top-N by reference| / N.
    """
    both = aligned(score, reference)
    if len(both) < 3:
        return {"spearman": float("nan"), "pearson": float("nan"), "precision_at_n": float("nan")}
    n = min(top_n, len(both))
    top_s = set(both["s"].nlargest(n).index)
    top_r = set(both["r"].nlargest(n).index)
    return {
        "spearman": spearman(score, reference),
        "pearson": float(_stats().pearsonr(both["s"], both["r"]).statistic),
        "precision_at_n": len(top_s & top_r) / n,
    }


def planted_auroc(score: pd.Series, planted_ids) -> float:
    """AUROC of ``score`` separating planted (e.g. mislabeled) examples from the rest."""
    score = score.dropna()
    is_planted = score.index.isin(np.asarray(planted_ids))
    if is_planted.all() or not is_planted.any():
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(is_planted, score.to_numpy()))
