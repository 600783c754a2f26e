"""Stage ``sweep_report`` on text: every grid's scored cells -> the tidy table, mean ± t-based 95% CI over seeds
(experiments/sweep.py, as the image stage) with the text metrics beside (``TEXT_METRICS``: canary exposure,
validation perplexity change, stored gradients), and the ToW plots. Unlearned language models are not
registered in MLflow's model registry (no text stage registers one)."""
from __future__ import annotations

from typing import Any, Mapping

from ...config import from_params
from ...experiments.sweep import GRIDS, SUMMARY_METRICS, SweepConfig, plot_metric, results_table, summarize, \
    summary_metrics
from ...io import load_json, save_json, save_table
from ...tracking import StageRecord, flatten
from ..base import StagePaths
from ...evaluation.text import exposure_columns
from .common import numeric

TEXT_METRICS = ("exposure_mean", "forget_exposure", "validation_ppl", "val_ppl_change", "stored_mib")


def run(params: Mapping[str, Any], paths: StagePaths, on_row=None) -> StageRecord:
    configs = {grid: from_params(SweepConfig, params[grid], grid) for grid in GRIDS}
    results = results_table(load_json(paths.results / "sweep/cells.json", "sweep_score"), configs)
    exposures = exposure_columns(results.columns)
    summary = summarize(results, (*SUMMARY_METRICS, *TEXT_METRICS, *exposures))
    save_table(results, paths.results / "sweep/results.csv")
    save_table(summary, paths.results / "sweep/summary.csv")
    metrics = summary_metrics(summary)
    save_json(metrics, paths.metrics / "sweep.json")
    plots = paths.results / "plots/sweep"
    for grid, config in configs.items():
        rows = summary[summary["grid"] == grid]
        plot_metric(rows, plots / f"{grid}_tow.png", "tow", config.kinds)
        plot_metric(rows, plots / f"{grid}_tow_mia.png", "tow_mia", config.kinds, ylabel="ToW-MIA")
    return StageRecord("sweep_report", metrics=numeric(flatten(metrics)),
                       artifacts=[paths.results / "sweep/results.csv", paths.results / "sweep/summary.csv", plots])
