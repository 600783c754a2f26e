"""Stage ``claims`` on text: seed 003's findings 1, 2 and 4 (experiments/text_claims.py) tested on the ``sweep``
grid's first_epoch_ga cells, one per (gradient source, layer set) and seed (modality/text/grid.py).

Each cell's exposure of the most-copied canaries after the ascent, its validation perplexity change and its
stored gradient bytes are the rows ``seed003_claims`` reads, the seed's original model's exposure its reference.
Written in the image run's shape: results/claims.csv (claim, finding, comparison, effect, ci_low, ci_high,
n_seeds, verdict), results/claims.md and metrics/claims.json ({claim: effect, ci_low, ci_high, verdict}).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from ...config import ConfigError
from ...evaluation.claims import claims_report
from ...experiments.text_claims import MARGIN_BITS, PPL_BOUND, seed003_claims
from ...io import load_table, save_json, save_table
from ...tracking import StageRecord
from ..base import StagePaths
from .common import exposure_columns

GRID = "sweep"  # the grid whose first_epoch_ga variants are the ablations (params/text.yaml)
SOURCES = ("first_epoch", "last_epoch")


def ablation_rows(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The ``sweep`` grid's first_epoch_ga cells as ``seed003_claims`` reads them (seed, source, layers,
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


def run(params: Mapping[str, Any], paths: StagePaths, on_row=None) -> StageRecord:
    results = load_table(paths.results / "sweep/results.csv", "sweep_report")
    rows, original = ablation_rows(results)
    found = seed003_claims(rows, original)
    table = found.rename(columns={"effect_means": "comparison", "n": "n_seeds"})[
        ["claim", "finding", "comparison", "effect", "ci_low", "ci_high", "n_seeds", "verdict"]]
    save_table(table, paths.results / "claims.csv")
    (paths.results / "claims.md").write_text(claims_markdown(table, rows))
    metrics = {row["claim"]: {"effect": row["effect"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
                              "verdict": row["verdict"]} for row in table.to_dict("records")}
    save_json(metrics, paths.metrics / "claims.json")
    numbers = {f"{claim}.{k}": v for claim, m in metrics.items() for k, v in m.items()
               if k != "verdict" and isinstance(v, (int, float)) and np.isfinite(v)}
    return StageRecord("claims", metrics=numbers, artifacts=[paths.results / "claims.csv", paths.results / "claims.md"],
                       tags={f"verdict.{claim}": m["verdict"] for claim, m in metrics.items()})


def claims_markdown(table: pd.DataFrame, rows: pd.DataFrame) -> str:
    """The image report's layout (evaluation/claims.py ``claims_report``) with seed 003's metric."""
    variants = ", ".join(f"{s} x {l}" for s, l in rows[["source", "layers"]].drop_duplicates().itertuples(index=False))
    return claims_report(
        f"Seed 003's findings 1, 2 and 4 on the {GRID} grid's first_epoch_ga cells ({variants}); "
        f"{rows['seed'].nunique()} training seeds. Metric: canary exposure in bits (lower = more forgotten); "
        f"{MARGIN_BITS:g} bit counts as no difference; finding 4's bound is +{PPL_BOUND:.0%} validation "
        "perplexity. Effect = mean per-seed difference, 95% t-based CI; a positive effect is what the paper says.",
        table, label=lambda row: f"{row['finding']}: {row['claim']}")
