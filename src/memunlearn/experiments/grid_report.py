"""The experiment grids' tidy results table, t-based confidence intervals and main plot.

A grid runs every (method, group score, forget-set kind, strategy, seed)
cell; a forget set is a kind (low/mid/high/mix groups, random, class, ...)
by a group score (exact memorization, a proxy, entanglement). The default
run has four grids, each a params section run by its own DVC stage
(one DVC stage runs them all: ``grids``, stages/grids.py) and sharing no cell with the others, so
nothing is computed twice:

- ``ablations``: memorization level (low, high, mix) x the RUM controls;
- ``rum_compare``: RUM driven by a proxy, each proxy's own forget set and
  oracle (the proxies paper's protocol), beside its controls; its exact-score
  counterpart is the ``ablations`` grid's ``mix`` row;
- ``entanglement``: forget sets by measured entanglement (low, high).

Each cell is
one small record (the unlearned model's metrics, its oracle's, and wall
seconds). This module turns the records into a tidy table (one row per
cell) and a summary per method x group score x kind x strategy: the mean
over seeds and a t-based 95% confidence interval (docs/methods.md §6: "every metric over >= 3
seeds as mean ± t-based 95% CI, and each method's wall time beside
retrain's"). Pure functions on DataFrames; the plot is the papers' main
figure, ToW by method and memorization level.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..evaluation.stats import CONFIDENCE, mean_ci
from ..grid import GRIDS, KEYS, GridConfig  # noqa: F401  (re-exported: the report stage's one import)

GROUP = KEYS[:-1]  # one summary row: statistics over seeds
SUMMARY_METRICS = ("tow", "tow_mia", "forget_acc", "retain_acc", "test_acc", "mia", "seconds", "oracle_seconds")


# ---- the tidy table ----------------------------------------------------------

def cell_row(cell: Mapping[str, Any]) -> dict[str, Any]:
    """One cell record -> one tidy row: the keys, the unlearned model's metrics, ``oracle_<metric>``."""
    missing = [k for k in (*KEYS, "unlearned", "oracle") if k not in cell]
    if missing:
        raise ValueError(f"grid cell record lacks {missing}; rerun the grids' stage, `dvc repro grids`")
    row = {k: cell[k] for k in KEYS}
    row |= dict(cell["unlearned"])
    row |= {f"oracle_{k}": v for k, v in cell["oracle"].items()}
    row |= {k: v for k, v in cell.items() if k not in (*KEYS, "unlearned", "oracle") and np.isscalar(v)}
    return row


def results_table(cells: Iterable[Mapping[str, Any]], configs: Mapping[str, GridConfig] | GridConfig
                  ) -> pd.DataFrame:
    """The tidy table of the grids' cells ({grid name: config}), one row each, in grid order.

    Records of cells outside the grids (left over from a larger earlier grid)
    are dropped; a grid cell without a record is an error.
    """
    if isinstance(configs, GridConfig):
        configs = {"ablations": configs}
    grid = pd.concat([config.cells(name) for name, config in configs.items()], ignore_index=True)
    wanted = set(grid.itertuples(index=False, name=None))
    rows = pd.DataFrame([cell_row(c) for c in cells if tuple(c.get(k) for k in KEYS) in wanted])
    if rows.empty:
        rows = grid.iloc[:0]
    rows = rows.astype({"seed": "int64"})
    duplicated = rows.duplicated(list(KEYS))
    if duplicated.any():
        raise ValueError(f"{int(duplicated.sum())} grid cells are recorded twice; remove the stale cell files")
    table = grid.merge(rows, on=list(KEYS), how="left", indicator=True)
    absent = table[table["_merge"] == "left_only"]
    if len(absent):
        first = absent.iloc[0]
        cell = "-".join(str(first[k]) for k in KEYS[1:])
        raise ValueError(f"{len(absent)} grid cell(s) have no record, e.g. {first['grid']}_cell@{cell}; "
                         f"run `dvc repro grids_report`")
    return table.drop(columns="_merge")


# ---- statistics over seeds ---------------------------------------------------

def summarize(results: pd.DataFrame, metrics: Sequence[str] = SUMMARY_METRICS,
              confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per method x group score x kind x strategy: ``n_seeds``, and per metric ``<m>_mean``, ``<m>_ci95``
    (CI half-width), ``<m>_ci_low``, ``<m>_ci_high``. Groups keep the results' order."""
    present = [m for m in metrics if m in results.columns]
    rows = []
    for keys, group in results.groupby(list(GROUP), sort=False):
        row = dict(zip(GROUP, keys), n_seeds=group["seed"].nunique())
        for metric in present:
            mean, half, _ = mean_ci(group[metric].to_numpy(dtype=np.float64), confidence)
            row |= {f"{metric}_mean": mean, f"{metric}_ci95": half,
                    f"{metric}_ci_low": mean - half, f"{metric}_ci_high": mean + half}
        rows.append(row)
    return pd.DataFrame(rows)


def summary_metrics(summary: pd.DataFrame) -> dict[str, Any]:
    """Nested {"grids": {grid: {method: {group_score: {kind: {strategy: {metric: value}}}}}} for `dvc metrics show`:
    ``n_seeds``, ``<m>_mean`` and ``<m>_ci95`` (NaN -> null in the JSON)."""
    out: dict[str, Any] = {}
    value_columns = [c for c in summary.columns if c.endswith(("_mean", "_ci95")) or c == "n_seeds"]
    for row in summary.to_dict("records"):
        node = out
        for key in GROUP[:-1]:
            node = node.setdefault(row[key], {})
        node[row[GROUP[-1]]] = {c: row[c] for c in value_columns}
    return {"grids": out}


# ---- the main figure -----------------------------------------------------------

def forget_set_labels(summary: pd.DataFrame, kinds: Sequence[str] | None = None) -> list[tuple[str, str, str]]:
    """The x axis: (group_score, kind, label) in grid order; the label names the score only if there are several."""
    scores = list(dict.fromkeys(summary["group_score"]))
    kinds = list(kinds) if kinds is not None else list(dict.fromkeys(summary["kind"]))
    return [(score, kind, kind if len(scores) == 1 else f"{kind}\n({score})") for score in scores for kind in kinds]


def plot_metric(summary: pd.DataFrame, path: Path, metric: str = "tow", kinds: Sequence[str] | None = None,
                ylabel: str = "ToW (higher = closer to retraining)") -> Path:
    """Bars of ``<metric>_mean`` by forget set (x: kind, e.g. memorization level) and method (bars), one
    panel per strategy; error bars are the t-based 95% CI (none where it is NaN: a single seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = forget_set_labels(summary, kinds)
    methods = list(dict.fromkeys(summary["method"]))
    strategies = list(dict.fromkeys(summary["strategy"]))
    width = 0.8 / max(len(methods), 1)
    fig, axes = plt.subplots(1, len(strategies), figsize=(1.5 + (0.8 + 0.5 * len(methods)) * len(columns)
                                                          * len(strategies), 3.8), sharey=True, squeeze=False)
    for ax, strategy in zip(axes[0], strategies):
        for i, method in enumerate(methods):
            rows = summary[(summary["strategy"] == strategy) & (summary["method"] == method)]
            rows = rows.set_index(["group_score", "kind"]).reindex([(g, k) for g, k, _ in columns])
            x = np.arange(len(columns)) + (i - (len(methods) - 1) / 2) * width
            ax.bar(x, rows[f"{metric}_mean"].to_numpy(), width, label=method)
            errors = rows[f"{metric}_ci95"].to_numpy()
            shown = np.isfinite(errors)  # a single seed has no interval: no error bar, not a zero-width one
            ax.errorbar(x[shown], rows[f"{metric}_mean"].to_numpy()[shown], yerr=errors[shown], fmt="none",
                        ecolor="black", capsize=3, linewidth=1)
        ax.set_xticks(np.arange(len(columns)), [label for _, _, label in columns])
        ax.set_xlabel("forget set")
        ax.set_title(f"strategy: {strategy}")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0), title="method")
    fig.suptitle(f"{metric} by method and forget set (mean, 95% CI over seeds)", fontsize="medium")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
