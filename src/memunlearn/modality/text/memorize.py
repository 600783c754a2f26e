"""Stage ``memorize`` on text: per-sequence exact memorization from K leave-group-out language models
(memorization/text.py; a canary's copies are one group). The canaries play the image path's planted label
noise in the metrics (``planted_noise_auroc``: how well the scores single out every canary copy). No
subset-model store: the K models are trained each run (data/memorize_store stays empty)."""
from __future__ import annotations

import time
from typing import Any, Mapping

from scipy.stats import spearmanr
from tqdm import tqdm

from ...config import from_params
from ...devices import resolve_device
from ...io import save_json, save_table
from ...memorization.agreement import planted_auroc
from ...memorization.exact import ExactConfig
from ...memorization.text import canary_groups, lm_scores, train_lm_subset_models
from ...tracking import StageRecord
from ...training.lm import LMTrainConfig
from ...training.recipe import TrainConfig
from ..base import StagePaths
from .common import load_prepared


def run(params: Mapping[str, Any], paths: StagePaths, on_row=None) -> StageRecord:
    recipe = from_params(TrainConfig, params["train"], "train")
    config = from_params(ExactConfig, params["memorize"], "memorize")
    data = load_prepared(paths.prepared)
    groups = canary_groups(data.train, data.canaries)
    start = time.perf_counter()
    progress = tqdm(total=config.num_models, desc="subset models", unit="model")  # ETA from finished models
    runs = train_lm_subset_models(data.train, groups, LMTrainConfig.of(recipe), data.info.vocab_size,
                                  data.info.pad_id, config.num_models, config.subset_fraction, config.seed,
                                  resolve_device(recipe.device), on_model=lambda k: progress.update())
    progress.close()
    seconds = time.perf_counter() - start
    ids = data.train.example_ids.numpy()
    scores = lm_scores(runs, ids, groups)
    save_table(scores, paths.memorize / "scores.parquet")
    paths.memorize_store.mkdir(parents=True, exist_ok=True)
    half = config.num_models // 2
    a, b = (lm_scores(runs, ids, groups, part)["mem_prob"] for part in (slice(0, half), slice(half, None)))
    both = a.notna() & b.notna()
    by_id = scores.set_index("example_id")
    copies = data.labels()
    rank = by_id["mem"].rank(ascending=False)
    plots = plot_by_copies(by_id, copies, paths.memorize_plots)
    metrics = {
        "num_models": config.num_models, "num_models_auto": False, "models_trained": config.num_models,
        "models_reused": 0, "precision": recipe.precision,
        "mean_mem": float(by_id["mem"].mean()), "missing_fraction": float(by_id["mem"].isna().mean()),
        "planted_noise_auroc": planted_auroc(by_id["mem"], data.canary_ids),  # here: the canaries
        "planted_noise_auroc_prob": planted_auroc(by_id["mem_prob"], data.canary_ids),
        "spearman_split_halves": float(spearmanr(a[both], b[both]).statistic) if both.sum() > 2 else None,
        "canary_median_mem": {str(c): float(by_id["mem"][copies == c].median()) for c in sorted(set(copies)) if c},
        "canary_median_rank": {str(c): float(rank[copies == c].median()) for c in sorted(set(copies)) if c},
        "corpus_median_mem": float(by_id["mem"][copies == 0].median()),
        "seconds": seconds, "compute_seconds": runs.seconds,
        "examples_processed": int(runs.masks.sum()) * recipe.epochs,
        "models_per_hour": config.num_models / seconds * 3600,
        "runner": "local", "workers": 1,
    }
    save_json(metrics, paths.metrics / "memorize.json")
    return StageRecord("memorize", metrics=metrics, artifacts=[paths.memorize / "scores.parquet", *plots])


def plot_by_copies(by_id, copies, out) -> list:
    """mem (next-token accuracy, in − out) of corpus sequences and of canary copies by copy count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    groups = sorted(set(copies))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.boxplot([by_id["mem"][copies == c].dropna().to_numpy() for c in groups])
    ax.set_xticks(range(1, len(groups) + 1), ["corpus" if c == 0 else f"canary x{c}" for c in groups])
    ax.set_ylabel("mem (token accuracy in − out)")
    fig.tight_layout()
    path = out / "mem_by_copies.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]
