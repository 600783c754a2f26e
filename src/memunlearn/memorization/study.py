"""The proxy study (scalability paper; docs/methods.md §2): agreement with exact scores, its ceiling, and cost.

Each proxy is compared with both exact scores of the memorize stage: ``mem_prob`` (the true-class-probability
variant, which the forget sets and RUM use, so the study's headline ``spearman``) and ``mem`` (the 0/1 variant,
``*_mem`` columns). Beside each Spearman stand two ceilings on what a perfect proxy could reach:

- ``noise_ceiling``: the exact score is itself an estimate from K subset models. Its split-half reliability
  (Spearman between two disjoint halves of the K models, metrics/memorize.json) stepped up to K models by the
  Spearman-Brown formula, rel_K = 2 r / (1 + r), bounds the correlation of any noiseless score with it at
  sqrt(rel_K) (Spearman's correction for attenuation);
- ``tie_ceiling``: the Spearman of the exact score with itself, ties broken: a proxy without ties cannot
  exceed it (``mem`` is exactly 0 for most examples, so ranks within that block are arbitrary).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from .agreement import agreement, planted_auroc, spearman
from .proxies import PROXIES, score_columns

EXACT_SCORES = {"mem_prob": "", "mem": "_mem"}  # exact score -> its columns' suffix; mem_prob is the headline
SPLIT_HALF_KEYS = {"mem": "spearman_split_halves", "mem_prob": "spearman_split_halves_prob"}  # metrics/memorize.json


def noise_ceiling(split_half: float) -> float:
    """sqrt(2 r / (1 + r)): the highest correlation a noiseless score can reach with an exact score whose two
    halves correlate r (Spearman-Brown prophecy for doubling, then the attenuation bound); NaN if r <= 0."""
    if not (isinstance(split_half, (int, float)) and math.isfinite(split_half)) or split_half <= 0:
        return math.nan
    return math.sqrt(2 * split_half / (1 + split_half))


def tie_ceiling(exact: pd.Series) -> float:
    """Spearman of ``exact`` with its own ranks, ties broken by position: the best a tie-free proxy reaches."""
    exact = exact.dropna()
    return spearman(exact.rank(method="first"), exact)


def proxy_study(
    proxies: pd.DataFrame,
    exact: pd.DataFrame,
    planted_ids: np.ndarray,
    proxy_seconds: dict[str, float],
    exact_seconds: float,
    top_n: int,
    split_halves: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """One row per proxy: agreement with each exact score and its ceilings, planted-noise AUROC and cost.

    ``proxies`` is the wide proxies table; ``exact`` the memorize stage's scores by example_id (columns
    ``mem_prob`` and ``mem``; a missing one is skipped); ``split_halves``: each exact score's split-half
    Spearman (``mem``, ``mem_prob``; missing -> NaN noise ceiling). Per exact score (suffix "" for mem_prob,
    "_mem" for mem): spearman, pearson, precision_at_n, noise_ceiling, tie_ceiling. Cost: seconds, fraction of
    the exact computation, and how many times cheaper than it.
    """
    scores = proxies.set_index("example_id")
    split_halves = split_halves or {}
    references = {name: suffix for name, suffix in EXACT_SCORES.items() if name in exact.columns}
    if not references:
        raise ValueError(f"the exact scores have none of {sorted(EXACT_SCORES)}; run 'dvc repro memorize' again")
    ceilings = {name: {"noise_ceiling": noise_ceiling(split_halves.get(name, math.nan)),
                       "tie_ceiling": tie_ceiling(exact[name])} for name in references}
    rows = []
    for name in score_columns(proxies):
        seconds = proxy_seconds.get(name, float("nan"))
        row = {"proxy": name, "direction": PROXIES.get(name).direction if name in PROXIES else np.nan}
        for reference, suffix in references.items():
            found = {**agreement(scores[name], exact[reference], top_n), **ceilings[reference]}
            row.update({f"{key}{suffix}": value for key, value in found.items()})
        rows.append({
            **row,
            "planted_noise_auroc": planted_auroc(scores[name], planted_ids),
            "seconds": seconds,
            "cost_fraction_of_exact": seconds / exact_seconds,
            "times_cheaper_than_exact": exact_seconds / seconds if seconds > 0 else np.inf,
        })
    first = "spearman" + references[next(iter(references))]
    if not rows:  # no proxy computed (train.init loaded a language model: its proxies all read training records)
        return pd.DataFrame(columns=["proxy", first])
    return pd.DataFrame(rows).sort_values(first, ascending=False, ignore_index=True)


def plot_proxy_vs_exact(proxies: pd.DataFrame, exact: pd.Series, folder: Path, planted_ids=()) -> list[Path]:
    """One scatter PNG per proxy (score vs the exact score ``exact``, e.g. mem_prob), planted examples highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scores = proxies.set_index("example_id")
    planted = scores.index.isin(np.asarray(planted_ids))
    paths = []
    for name in score_columns(proxies):
        both = pd.concat({"proxy": scores[name], "exact": exact}, axis=1)
        fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=110)
        ax.scatter(both["exact"][~planted], both["proxy"][~planted], s=4, alpha=0.35, label="clean")
        if planted.any():
            ax.scatter(both["exact"][planted], both["proxy"][planted], s=7, alpha=0.8, color="crimson",
                       label="planted label noise")
            ax.legend(loc="best", fontsize=7, markerscale=2)
        ax.set_xlabel(f"exact memorization {exact.name or ''} (Feldman & Zhang)")
        ax.set_ylabel(f"{name} (higher = more memorized)")
        ax.set_title(name)
        fig.tight_layout()
        path = folder / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
