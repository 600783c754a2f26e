"""Stage `grids_report`: every grid's scored cells (`grids_evaluate`) -> tidy table, mean ± t-based 95% CI per
cell group over seeds (the modality's grid metrics beside the shared ones), DVC metrics, the ToW plots by forget
set and strategy (docs/methods.md §6-7), and each cell's unlearned model registered in MLflow."""
from _common import (METRICS_DIR, PREPARED, RESULTS_DIR, GRIDS_DATA_DIR, flatten, load_params, registered, stage,
                     track)

import functools

from memunlearn.config import from_params
from memunlearn.experiments.grid_report import (GRIDS, SUMMARY_METRICS, GridConfig, plot_metric, results_table,
                                          summarize, summary_metrics)
from memunlearn.grid import KEYS, TUNED, cell_name, grid_sections
from memunlearn.io import load_json, save_json, save_table
from memunlearn.modality import load_modality
from memunlearn.tracking import Alias, ModelRecord, RunModel, StageRecord

PLOTS_DIR = RESULTS_DIR / "plots/grids"


@stage
def main() -> None:
    params = load_params("modality", *GRIDS, TUNED)
    modality = load_modality(params["modality"], PREPARED)
    configs = {grid: from_params(GridConfig, params[grid], grid) for grid in grid_sections(params["modality"])}
    cells = load_json(RESULTS_DIR / "grids/cells.json", "grids_evaluate")
    results = results_table(cells, configs)
    summary = summarize(results, (*SUMMARY_METRICS, *modality.grid_metrics(results.columns)))
    save_table(results, RESULTS_DIR / "grids/results.csv")
    save_table(summary, RESULTS_DIR / "grids/summary.csv")
    metrics = summary_metrics(summary)
    save_json(metrics, METRICS_DIR / "grids.json")
    for grid, config in configs.items():
        rows = summary[summary["grid"] == grid]
        plot_metric(rows, PLOTS_DIR / f"{grid}_tow.png", "tow", config.kinds)
        plot_metric(rows, PLOTS_DIR / f"{grid}_tow_mia.png", "tow_mia", config.kinds, ylabel="ToW-MIA")
    info = modality.load(PREPARED).info
    track(StageRecord("grids_report", flatten(params), flatten(metrics),
                      artifacts=[RESULTS_DIR / "grids/results.csv", RESULTS_DIR / "grids/summary.csv", PLOTS_DIR],
                      run_models=cell_models(results, modality, info), aliases=best_tow_aliases(results)))


def cell_models(results, modality, info) -> list[RunModel]:
    """Each cell's unlearned model (its checkpoint), to log and register into the cell's own run as
    ``<grid>-<group score>-<kind>``, one version per cell (done once: a rerun loads no checkpoint of a cell
    already registered). A cell its grid loaded from the unlearning cache is registered only if no version with
    its keys and forget set is (one computed by the unlearn stage or LiRA's copies is not): a grid that reruns
    for an unrelated edit adds no versions."""
    models = []
    for row in results.to_dict("records"):
        if not isinstance(row.get("run_id"), str):  # the cell ran without MLflow
            continue
        same = Alias(forget_set_role(row), "", {**{k: row[k] for k in KEYS}, "forget_digest": row["forget_digest"]})
        models.append(RunModel(row["run_id"], "unlearned_model", functools.partial(cell_model, row, modality, info),
                               row.get("forget_digest"), unless=same if row.get("cached") else None))
    return models


def forget_set_role(row) -> str:
    """A forget set's registered model role, ``<grid>-<group score>-<kind>`` (one version per cell)."""
    return f"{row['grid']}-{row['group_score']}-{row['kind']}"


def cell_model(row: dict, modality, info) -> ModelRecord:
    name = cell_name(row)
    model, _ = modality.load_model(GRIDS_DATA_DIR / row["grid"] / "cells" / f"{name}.pt", "grids")
    return registered(model, forget_set_role(row), info, modality.model_card(info), cell=f"{row['grid']}_cell@{name}",
                      **{k: row[k] for k in KEYS}, forget_kind=row["kind"])


def best_tow_aliases(results) -> list[Alias]:
    """``@best-tow`` of each forget set's registered model (``<grid>-<group score>-<kind>``, one version per cell):
    the cell with the highest ToW."""
    forget_sets = ["grid", "group_score", "kind"]
    scored = results.dropna(subset=["tow"])
    best = scored.loc[scored.groupby(forget_sets, sort=False)["tow"].idxmax()]
    return [Alias(forget_set_role(row._asdict()), "best-tow",
                  {"method": row.method, "strategy": row.strategy, "seed": str(row.seed)})
            for row in best.itertuples()]


if __name__ == "__main__":
    main()
