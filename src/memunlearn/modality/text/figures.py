"""Stage ``figures`` on text: the study's pictures for a language model, from the stages' tables
(evaluation/figures.py), under results/plots/figures/ as on images:

- memorization_by_copies.png: the exact score ``mem_prob`` of each training sequence by its canary copy count
  (0 = corpus text): repeated canaries should stand out;
- evaluation.png: F/R/test next-token accuracy and MIA of the original, unlearned and oracle models;
- exposure.png: canary exposure per copy count of those three models;
- seed003_ablations.png: the `sweep` grid's variants (gradient source x layer set): exposure of the most
  repeated canaries after unlearning, validation perplexity change, gradients stored ahead, seconds;
- rum_compare_tow.png, forgetting_quality_epsilon.png: as on images.
"""
from __future__ import annotations

from typing import Any, Mapping

from ...evaluation.figures import (accuracy_bars, epsilon_histogram, exposure_bars, save, score_by_group,
                                   tow_by_variant, variant_panels)
from ...io import load_table
from ...tracking import StageRecord
from ..base import StagePaths
from .common import exposure_columns, load_prepared


def run(params: Mapping[str, Any], paths: StagePaths, on_row=None) -> StageRecord:
    out = paths.results / "plots/figures"
    data = load_prepared(paths.prepared)
    scores = load_table(paths.memorize / "scores.parquet", "memorize").set_index("example_id")["mem_prob"]
    evaluation = load_table(paths.results / "evaluation.csv", "evaluate")
    summary = load_table(paths.results / "sweep/summary.csv", "sweep_report")
    top = exposure_columns(summary.columns, "_mean")[-1:]  # the most copied canaries' exposure, if any
    ablations = {**{c.removesuffix("_mean"): f"exposure of {c.removesuffix('_mean').removeprefix('exposure_')} "
                                             "canaries (bits)" for c in top},
                 "val_ppl_change": "validation perplexity change", "stored_mib": "stored ahead (MiB)",
                 "seconds": "seconds"}
    paths_out = [
        save(score_by_group(scores, data.labels(), "canary copies (0 = corpus text)", "mem_prob"),
             out / "memorization_by_copies.png"),
        save(accuracy_bars(evaluation), out / "evaluation.png"),
        save(exposure_bars(evaluation, exposure_columns(evaluation.columns)), out / "exposure.png"),
        save(variant_panels(summary, "sweep", ablations), out / "seed003_ablations.png"),
        save(tow_by_variant(summary, "rum_compare"), out / "rum_compare_tow.png"),
        save(epsilon_histogram(load_table(paths.results / "forgetting_quality.csv", "forgetting_quality")),
             out / "forgetting_quality_epsilon.png"),
    ]
    return StageRecord("figures", artifacts=paths_out)
