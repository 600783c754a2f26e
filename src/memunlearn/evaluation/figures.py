"""The study's figures: pure functions from tables and arrays to matplotlib figures, and ``save``.

- ``memorized_examples``: per class, the most and least memorized training
  images, planted-noise examples framed in red (docs/methods.md §1);
- ``accuracy_bars``: FA/RA/TA/MIA of the original, unlearned and oracle models (§6);
- ``tow_by_variant``: mean ToW with its 95% CI per variant of one grid (§6-7);
  ``variant_panels``: the same for several metrics side by side (text: first-epoch gradient ascent's ablations, §8);
- ``epsilon_histogram``: LiRA's per-example ε of forgetting quality (§6);
- text (§8): ``score_by_group`` (a memorization score by canary copy count), ``exposure_bars`` (canary exposure
  per copy count of the original, unlearned and oracle models).

Not imported by ``evaluation/__init__``: only the ``figures`` stage draws
them, so editing a figure reruns nothing else.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NOISE_COLOR = "tab:red"
MODEL_LABELS = {"original": "original", "unlearned": "unlearned", "retrain": "oracle (retrain)",
                "oracle": "oracle (retrain)"}
ACCURACIES = {"forget_acc": "FA", "retain_acc": "RA", "test_acc": "TA", "mia": "MIA"}


def memorized_examples(images: np.ndarray, ranked: pd.DataFrame, class_names: Sequence[str],
                       per_class: int = 4, max_classes: int = 20) -> "Figure":
    """One row per class (the first ``max_classes``): its ``per_class`` most memorized training images, then its
    least memorized.

    images: (N, C, H, W) uint8; ranked: ``memorization.ranking.ranked_examples`` (most memorized first) with a
    ``position`` column, the example's row in ``images``. Titles give the score; a planted-noise example is
    framed in red, its title saying its label before the flip.
    """
    plt = _pyplot()
    classes = sorted(ranked["label"].unique())[:max_classes]
    columns = 2 * per_class
    fig, axes = plt.subplots(len(classes), columns, figsize=(1.25 * columns + 1.2, 1.35 * len(classes) + 0.6),
                             dpi=110, squeeze=False)
    for row, label in enumerate(classes):
        of_class = ranked[ranked["label"] == label]
        top = of_class.head(per_class)
        bottom = of_class.iloc[len(top):].tail(per_class).iloc[::-1]  # least memorized first, none of the top
        picks = [*top.itertuples(), *[None] * (per_class - len(top)), *bottom.itertuples()]
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col >= len(picks) or picks[col] is None:
                continue
            example = picks[col]
            _show(ax, images[example.position])
            title = f"{example.score:.2f}"
            if example.planted_noise:
                title += f" (was {class_names[example.clean_label]})"
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_color(NOISE_COLOR)
                    spine.set_linewidth(2.5)
            ax.set_title(title, fontsize=7, color=NOISE_COLOR if example.planted_noise else "black")
        axes[row][0].set_ylabel(class_names[label], fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(f"most memorized (left {per_class}) and least memorized (right {per_class}) per class; "
                 "red: planted label noise", fontsize=9)
    fig.tight_layout()
    return fig


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _show(ax, image: np.ndarray) -> None:
    """A (C, H, W) uint8 image: grayscale for one channel, RGB for three."""
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(np.transpose(image[:3], (1, 2, 0)))


def _model_bars(evaluation: pd.DataFrame, columns: Sequence[str], ticks: Sequence[str], fmt: str):
    """(figure, axes) of grouped bars: one group per column (tick label), one bar per model (row)."""
    plt = _pyplot()
    models = evaluation["model"].tolist()
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(6.0, 3.6), dpi=110)
    x = np.arange(len(columns))
    for i, (model, row) in enumerate(zip(models, evaluation[list(columns)].to_numpy(dtype=np.float64))):
        bars = ax.bar(x + (i - (len(models) - 1) / 2) * width, row, width, label=MODEL_LABELS.get(model, model))
        ax.bar_label(bars, fmt=fmt, fontsize=7)
    ax.set_xticks(x, ticks)
    return fig, ax


def accuracy_bars(evaluation: pd.DataFrame) -> "Figure":
    """Grouped bars: FA, RA, TA and MIA (the evaluate stage's table, one row per model)."""
    metrics = [m for m in ACCURACIES if m in evaluation.columns]
    fig, ax = _model_bars(evaluation, metrics, [ACCURACIES[m] for m in metrics], "%.2f")
    ax.set_ylim(0, 1.3)  # room for the legend above the bars
    ax.set_ylabel("accuracy / MIA score")
    ax.set_title("forget (FA), retain (RA), test (TA) accuracy and membership inference (MIA)", fontsize=9)
    ax.legend(fontsize=8, loc="upper center", ncol=len(evaluation))
    fig.tight_layout()
    return fig


def tow_by_variant(summary: pd.DataFrame, grid: str) -> "Figure":
    """Mean ToW per variant (method, group score, kind, strategy) of ``grid``, error bars = 95% CI over seeds."""
    return variant_panels(summary, grid, {"tow": "ToW (1 = the oracle's accuracies)"}, limits={"tow": (0, 1.05)})


def variant_panels(summary: pd.DataFrame, grid: str, metrics: Mapping[str, str],
                   limits: Mapping[str, tuple[float, float]] = {}) -> "Figure":
    """One horizontal bar panel per metric (``<metric>_mean`` of the grids summary -> axis label) for each variant
    (method, group score, kind, strategy) of ``grid``; error bars = 95% CI over seeds."""
    plt = _pyplot()
    rows = summary[summary["grid"] == grid]
    varying = [k for k in ("method", "group_score", "kind", "strategy") if rows[k].nunique() > 1] or ["strategy"]
    labels = [" / ".join(str(r[k]) for k in varying) for _, r in rows.iterrows()]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 + 2.8 * len(metrics), 0.45 * len(rows) + 1.4), dpi=110,
                             sharey=True, squeeze=False)
    y = np.arange(len(rows))
    for ax, (metric, label) in zip(axes[0], metrics.items()):
        errors = (rows[f"{metric}_ci95"].fillna(0).to_numpy(dtype=np.float64) if f"{metric}_ci95" in rows
                  else None)
        ax.barh(y, rows[f"{metric}_mean"].to_numpy(dtype=np.float64), xerr=errors, capsize=3, color="tab:blue")
        if metric in limits:
            ax.set_xlim(*limits[metric])
        ax.set_xlabel(label, fontsize=8)
    axes[0][0].set_yticks(y, labels, fontsize=8)
    axes[0][0].invert_yaxis()
    fig.suptitle(f"{grid}: by {' / '.join(varying)} (error bars: 95% CI over seeds)", fontsize=9)
    fig.tight_layout()
    return fig


def score_by_group(scores: pd.Series, groups: pd.Series, group_label: str, score_label: str) -> "Figure":
    """A box per group of examples (e.g. canary copy count; both Series indexed by example_id) of their scores,
    each example a dot: do more often repeated sequences score as more memorized?"""
    plt = _pyplot()
    joined = pd.concat({"score": scores, "group": groups}, axis=1, join="inner")
    names = sorted(joined["group"].unique())
    values = [joined.loc[joined["group"] == g, "score"].to_numpy(dtype=np.float64) for g in names]
    fig, ax = plt.subplots(figsize=(5.0, 3.4), dpi=110)
    ax.boxplot(values, showfliers=False)
    for i, v in enumerate(values, start=1):
        ax.plot(np.full(len(v), i) + np.linspace(-0.15, 0.15, len(v)), v, ".", color="tab:gray", alpha=0.4,
                markersize=3)
    ax.set_xticks(range(1, len(names) + 1), [f"{g}\n(n={len(v)})" for g, v in zip(names, values)], fontsize=8)
    ax.set_xlabel(group_label)
    ax.set_ylabel(score_label)
    ax.set_title(f"{score_label} by {group_label}", fontsize=9)
    fig.tight_layout()
    return fig


def exposure_bars(evaluation: pd.DataFrame, columns: Sequence[str]) -> "Figure":
    """Grouped bars: mean canary exposure (bits) per copy count (``columns``: the text evaluate stage's
    ``exposure_<c>x``, in the order drawn), one bar per model."""
    fig, ax = _model_bars(evaluation, columns, [f"{c.removeprefix('exposure_')} copies" for c in columns], "%.1f")
    ax.set_ylabel("exposure (bits)")
    ax.set_title("canary exposure by copies in training (Carlini et al. 2019)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def epsilon_histogram(table: pd.DataFrame, bins: int = 30) -> "Figure":
    """LiRA's per-example ε on the forget set (0 = unlearned and retrained copies are indistinguishable)."""
    plt = _pyplot()
    eps = table["epsilon"].to_numpy(dtype=np.float64)
    fig, ax = plt.subplots(figsize=(5.0, 3.4), dpi=110)
    ax.hist(eps[np.isfinite(eps)], bins=bins, color="tab:purple")
    ax.set_xlabel("ε per forget example")
    ax.set_ylabel("forget examples")
    ax.set_title(f"forgetting quality: ε of {len(eps)} forget examples (median {np.median(eps):.2f})",
                 fontsize=9)
    fig.tight_layout()
    return fig


def save(fig: "Figure", path: Path) -> Path:
    """Write ``fig`` as a PNG (folders created) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    _pyplot().close(fig)
    return path
