"""Stage `grids_evaluate`: every grid cell scored against its forget set's oracle (docs/methods.md §6).

Reads what the `grids` stage kept of each cell's unlearned model and of its
oracle (the modality's observation: image outputs, a text model's metrics
row), computes FA/RA/TA, per-subset forget accuracy, MIA, ToW and ToW-MIA
with the `evaluate` params (the MIA subsample drawn from the cell's seed),
and writes every cell's record to `results/grids/cells.json`. Only this stage
and the reports after it depend on `evaluate`: changing how models are
scored never unlearns again.
"""
from _common import PREPARED, RESULTS_DIR, GRIDS_DATA_DIR, flatten, load_params, stage, track

from memunlearn.config import from_params
from memunlearn.evaluation import EvaluateConfig
from memunlearn.experiments.cell import score_cell
from memunlearn.grid import GRIDS, ORACLE_OBSERVATION, TUNED, GridConfig, cell_name, forget_set_name, grid_sections
from memunlearn.io import load_json, load_table, save_json
from memunlearn.forgotten import without_forgotten
from memunlearn.modality import load_modality
from memunlearn.partition import apply_partition
from memunlearn.tracking import StageRecord

CELLS_FILE = RESULTS_DIR / "grids/cells.json"


@stage
def main() -> None:
    params = load_params("modality", "evaluate", *GRIDS, TUNED)
    modality = load_modality(params["modality"], PREPARED)
    data = without_forgotten(modality.load(PREPARED))
    scored, oracles = [], {}  # oracles: forget-set folder -> its oracle's metrics (shared by the set's cells)
    for grid in grid_sections(params["modality"]):
        for cell in from_params(GridConfig, params[grid], grid).cells(grid).to_dict("records"):
            name, forget_set = cell_name(cell), forget_set_name(cell)
            folder = GRIDS_DATA_DIR / grid / forget_set
            parts = apply_partition(data.train, load_table(folder / "forget.csv", "grids"))
            evaluate = from_params(EvaluateConfig, {**params["evaluate"], "seed": cell["seed"]}, "evaluate")
            if folder not in oracles:
                oracles[folder] = modality.observed_metrics(folder / ORACLE_OBSERVATION, data, parts, evaluate)
            unlearned = modality.observed_metrics(GRIDS_DATA_DIR / grid / "cells" / name, data, parts, evaluate)
            record = load_json(RESULTS_DIR / "grids" / grid / f"{name}.json", "grids")
            scored.append(score_cell(record, unlearned, oracles[folder]))
    save_json(scored, CELLS_FILE)
    track(StageRecord("grids_evaluate", flatten({"evaluate": params["evaluate"]}),
                      {"cells": len(scored), "oracles": len(oracles)}, artifacts=[CELLS_FILE]))


if __name__ == "__main__":
    main()
