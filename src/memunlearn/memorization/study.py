"""The proxy study (scalability paper; docs/methods.md §2): agreement with exact scores and cost."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .agreement import agreement, planted_auroc
from .proxies import PROXIES, score_columns


def proxy_study(
    proxies: pd.DataFrame,
    exact: pd.Series,
    planted_ids: np.ndarray,
    proxy_seconds: dict[str, float],
    exact_seconds: float,
    top_n: int,
) -> pd.DataFrame:
    """One row per proxy: Spearman, Pearson, precision@N vs exact, planted-noise AUROC and cost.

    ``proxies`` is the wide proxies table; ``exact`` the exact scores by
    example_id. Cost: seconds, fraction of the exact computation, and how
    many times cheaper than it.
    """
    scores = proxies.set_index("example_id")
    rows = []
    for name in score_columns(proxies):
        seconds = proxy_seconds.get(name, float("nan"))
        rows.append({
            "proxy": name,
            "direction": PROXIES.get(name).direction if name in PROXIES else np.nan,
            **agreement(scores[name], exact, top_n),
            "planted_noise_auroc": planted_auroc(scores[name], planted_ids),
            "seconds": seconds,
            "cost_fraction_of_exact": seconds / exact_seconds,
            "times_cheaper_than_exact": exact_seconds / seconds if seconds > 0 else np.inf,
        })
    return pd.DataFrame(rows).sort_values("spearman", ascending=False, ignore_index=True)


def plot_proxy_vs_exact(proxies: pd.DataFrame, exact: pd.Series, folder: Path, planted_ids=()) -> list[Path]:
    """One scatter PNG per proxy (score vs exact mem), planted examples highlighted."""
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
        ax.set_xlabel("exact memorization (Feldman & Zhang)")
        ax.set_ylabel(f"{name} (higher = more memorized)")
        ax.set_title(name)
        fig.tight_layout()
        path = folder / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
