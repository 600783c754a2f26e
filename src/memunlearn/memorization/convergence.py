"""Is K enough? How stable the exact scores are as models are added.

Spearman rho between the scores from the first k models and from all K, for
growing k, and between two disjoint halves (even vs odd model indices). A
curve that has flattened near 1 says more models would change little.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .agreement import spearman
from .engine import SubsetModelOutputs
from .exact import memorization_scores, split_half_pearson, split_half_spearman


def convergence(runs: list[SubsetModelOutputs], example_ids: np.ndarray, points: int = 8) -> tuple[pd.DataFrame, dict]:
    """(curve: k, spearman_vs_all; summary: spearman_half_vs_full, spearman_split_halves (mem), _prob (mem_prob), pearson_split_halves_prob)."""
    K = len(runs)
    full = memorization_scores(runs, example_ids)["mem"]
    ks = sorted({int(k) for k in np.linspace(2, K, num=min(points, K - 1))})
    curve = pd.DataFrame({"k": ks, "spearman_vs_all": [spearman(memorization_scores(runs[:k], example_ids)["mem"], full)
                                                       for k in ks]})
    summary = {
        "spearman_half_vs_full": spearman(memorization_scores(runs[: K // 2], example_ids)["mem"], full),
        "spearman_split_halves": split_half_spearman(runs, example_ids, "mem"),
        "spearman_split_halves_prob": split_half_spearman(runs, example_ids, "mem_prob"),
        "pearson_split_halves_prob": split_half_pearson(runs, example_ids, "mem_prob"),  # auto K's criterion
    }
    return curve, summary


def plot_convergence(curve: pd.DataFrame, scores: pd.DataFrame, folder: Path) -> list[Path]:
    """convergence.png (rho vs k) and histogram.png (distribution of mem)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4.2, 3.4), dpi=110)
    ax.plot(curve["k"], curve["spearman_vs_all"], marker="o")
    ax.set_xlabel("models used (k of K)")
    ax.set_ylabel("Spearman vs all K models")
    ax.set_ylim(0, 1.02)
    ax.set_title("convergence of exact memorization")
    fig.tight_layout()
    fig.savefig(folder / "convergence.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.2, 3.4), dpi=110)
    ax.hist(scores["mem"].dropna(), bins=40)
    ax.set_xlabel("mem (Feldman & Zhang)")
    ax.set_ylabel("training examples")
    ax.set_yscale("log")
    ax.set_title("exact memorization scores")
    fig.tight_layout()
    fig.savefig(folder / "histogram.png")
    plt.close(fig)
    return [folder / "convergence.png", folder / "histogram.png"]
