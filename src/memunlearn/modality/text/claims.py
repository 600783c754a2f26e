"""The first-epoch gradient ascent paper's findings 1, 2 and 4 tested on the text ablation's seeds (benchmarks/text_first_epoch_ga.py).

Each claim is a per-seed effect (positive = as the paper says), its mean and 95% t-interval over seeds
(evaluation/stats.py), and a verdict: ``supported`` when the interval clears the claim's threshold,
``contradicted`` when it lies wholly on the other side, else ``inconclusive``. Exposure is the mean over the
most-copied canaries (``exposure_<max>x``), in bits; ``margin`` bits count as "no difference". Finding 1 as
the paper states it compares first-epoch with all-epochs gradients (``first_epoch_beats_all_epochs``); gradients
at the final parameters (``first_epoch_beats_last_epoch``) are a control of its own, labelled so.
"""
from __future__ import annotations

import pandas as pd

from ...config import ConfigError
from ...evaluation.claims import claims_report
from ...evaluation.stats import mean_ci
from .evaluation import exposure_columns

MARGIN_BITS = 1.0  # exposure differences within one bit are "on par"
PPL_BOUND = 0.10  # finding 4: calibrated ascent keeps validation perplexity within +10%


def first_epoch_ga_claims(rows: pd.DataFrame, original_exposure: pd.Series, margin: float = MARGIN_BITS) -> pd.DataFrame:
    """``rows``: the ablation rows of every seed (columns seed, source, layers, exposure_<c>x, val_ppl_change,
    stored_mib); ``original_exposure``: the original model's exposure of the most-copied canaries per seed."""
    col = max((c for c in rows.columns if c.startswith("exposure_") and c.endswith("x")),
              key=lambda c: int(c[len("exposure_"):-1]))
    at = rows.set_index(["seed", "source", "layers"])[col]

    def per_seed(source, layers):
        return at.xs((source, layers), level=("source", "layers"))

    out = []

    def claim(name, finding, effect, threshold, text, opposite=None):
        mean, half, n = mean_ci(effect.to_numpy())
        low, high = mean - half, mean + half
        opposite = -threshold if opposite is None else opposite
        verdict = ("supported" if low > threshold else "contradicted" if high < opposite else "inconclusive")
        out.append({"claim": name, "finding": finding, "effect": mean, "ci_low": low, "ci_high": high, "n": n,
                    "verdict": verdict, "effect_means": text})

    for layers in rows["layers"].unique():
        sources = set(rows.loc[rows["layers"] == layers, "source"])  # finding 1 compares sources on one layer set
        if {"first_epoch", "all_epochs"} <= sources:  # the paper's comparison
            claim(f"first_epoch_beats_all_epochs[{layers}]", 1,
                  per_seed("all_epochs", layers) - per_seed("first_epoch", layers), 0.0,
                  f"{col} after all-epochs (gradients summed over every epoch) minus after first-epoch ascent "
                  f"({layers}); > 0: first epoch forgets more")
        if {"first_epoch", "last_epoch"} <= sources:  # a control the paper does not run
            claim(f"first_epoch_beats_last_epoch[{layers}]", 1,
                  per_seed("last_epoch", layers) - per_seed("first_epoch", layers), 0.0,
                  f"control, not the paper's comparison: {col} after last-epoch (gradients at the final "
                  f"parameters) minus after first-epoch ascent ({layers}); > 0: first epoch forgets more")
    first = rows[rows["source"] == "first_epoch"]
    if {"embedding", "all"} <= set(first["layers"]):
        claim("embedding_on_par_with_all_layers", 2,
              per_seed("first_epoch", "all") - per_seed("first_epoch", "embedding"), -margin,
              f"{col} after all-layer minus after embedding-only first-epoch ascent; > -{margin}: on par or better",
              opposite=-margin)
        stored = first.groupby("layers")["stored_mib"].first()
        saved = float(1 - stored["embedding"] / stored["all"])  # exact: the same bytes on every seed
        out.append({"claim": "embedding_halves_space", "finding": 2, "effect": saved, "ci_low": saved,
                    "ci_high": saved, "n": rows["seed"].nunique(),
                    "verdict": "supported" if saved > 0.5 else "contradicted",
                    "effect_means": "1 - stored bytes embedding / all layers (exact); > 0.5: halved"})
    if "head" in set(first["layers"]):
        drop = original_exposure - per_seed("first_epoch", "head")
        mean, half, n = mean_ci(drop.to_numpy())
        verdict = ("supported" if -margin < mean - half and mean + half < margin
                   else "contradicted" if mean - half > margin else "inconclusive")
        out.append({"claim": "output_layer_has_no_impact", "finding": 2, "effect": mean, "ci_low": mean - half,
                    "ci_high": mean + half, "n": n, "verdict": verdict,
                    "effect_means": f"{col} drop from first-epoch ascent on the output layer; within ±{margin}: none"})
    if "embedding" in set(first["layers"]):
        change = first[first["layers"] == "embedding"].set_index("seed")["val_ppl_change"]
        claim("calibration_keeps_validation", 4, PPL_BOUND - change, 0.0,
              f"{PPL_BOUND:.0%} minus the relative change of validation perplexity (embedding); > 0: within bound")
    return pd.DataFrame(out)


GRID = "ablations"  # the grid whose first_epoch_ga variants are the ablations (params/text.yaml)
SOURCES = ("first_epoch", "all_epochs", "last_epoch")


def ablation_rows(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The ``ablations`` grid's first_epoch_ga cells as ``first_epoch_ga_claims`` reads them (seed, source, layers,
    exposure_<c>x, val_ppl_change, stored_mib) and each seed's original exposure of the most-copied canaries.
    One forget set: kind ``canaries`` if the grid has it, else its first; the grid's first score and strategy."""
    rows = results[(results["grid"] == GRID) & results["source"].isin(SOURCES)] if "source" in results else results[:0]
    if rows.empty:
        raise ConfigError(f"claims (text): the {GRID} grid has no first_epoch_ga cell; list methods.<variant> blocks "
                          f"of first_epoch_ga in {GRID}.methods (params/text.yaml) and rerun `dvc repro claims`")
    kind = "canaries" if "canaries" in set(rows["kind"]) else rows["kind"].iloc[0]
    rows = rows[(rows["kind"] == kind) & (rows["group_score"] == rows["group_score"].iloc[0])]
    rows = rows[rows["strategy"] == rows["strategy"].iloc[0]]
    exposures = exposure_columns(rows.columns)
    table = rows[["seed", "source", "layers", *exposures, "val_ppl_change", "stored_mib"]].reset_index(drop=True)
    original = rows.groupby("seed")[f"original_{exposures[-1]}"].first()
    return table, original


def text_claims_markdown(table: pd.DataFrame, rows: pd.DataFrame) -> str:
    """The image report's layout (evaluation/claims.py ``claims_report``) with the text run's metric (canary
    exposure)."""
    variants = ", ".join(f"{s} x {l}" for s, l in rows[["source", "layers"]].drop_duplicates().itertuples(index=False))
    return claims_report(
        f"Findings 1, 2 and 4 of *A More Practical Approach to Machine Unlearning* on the {GRID} grid's "
        f"first_epoch_ga cells ({variants}); "
        f"{rows['seed'].nunique()} training seeds. Metric: canary exposure in bits (lower = more forgotten); "
        f"{MARGIN_BITS:g} bit counts as no difference; finding 4's bound is +{PPL_BOUND:.0%} validation "
        "perplexity. Effect = mean per-seed difference, 95% t-based CI; a positive effect is what the paper says.",
        table, label=lambda row: f"{row['finding']}: {row['claim']}")
