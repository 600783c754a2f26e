"""Stage `sweep_score`: every grid cell scored against its forget set's oracle (docs/methods.md §6).

Reads each cell's unlearned outputs and its oracle's (both from its grid's
stage, `grids`), computes FA/RA/TA, per-subset forget accuracy, MIA, ToW and
ToW-MIA with the `evaluate` params (the MIA subsample drawn from the cell's
seed), and writes every cell's record to `results/sweep/cells.json`. Only this
stage and the reports after it depend on `evaluate`: changing how models are
scored never unlearns again.
"""
from _common import PREPARED, RESULTS_DIR, SWEEP_DATA_DIR, flatten, load_params, stage, track
from _modality import elsewhere

from memunlearn.config import from_params
from memunlearn.data import load_split
from memunlearn.evaluation import EvaluateConfig, ModelOutputs, output_metrics
from memunlearn.experiments.cell import score_cell
from memunlearn.grid import GRIDS, SweepConfig, cell_name, forget_set_name
from memunlearn.io import load_json, load_table, save_json
from memunlearn.modality.text import sweep_score as text_stage
from memunlearn.partition import apply_partition
from memunlearn.tracking import StageRecord

CELLS_FILE = RESULTS_DIR / "sweep/cells.json"


@stage
def main() -> None:
    params = load_params("evaluate", *GRIDS)
    if elsewhere(params, {"text": text_stage.run}):
        return
    train, test = load_split(PREPARED / "train.npz"), load_split(PREPARED / "test.npz")
    scored, oracles = [], {}  # oracles: forget-set folder -> its oracle's metrics (shared by the set's cells)
    for grid in GRIDS:
        for cell in from_params(SweepConfig, params[grid], grid).cells(grid).to_dict("records"):
            name, forget_set = cell_name(cell), forget_set_name(cell)
            folder = SWEEP_DATA_DIR / grid / forget_set
            parts = apply_partition(train, load_table(folder / "forget.csv", "grids"))
            evaluate = from_params(EvaluateConfig, {**params["evaluate"], "seed": cell["seed"]}, "evaluate")
            if folder not in oracles:
                outputs = ModelOutputs.load(folder / "outputs.npz", "grids")
                oracles[folder] = output_metrics(outputs, parts.forget, parts.retain, test, parts.subsets, evaluate)
            unlearned = ModelOutputs.load(SWEEP_DATA_DIR / grid / "cells" / f"{name}.npz", "grids")
            metrics = output_metrics(unlearned, parts.forget, parts.retain, test, parts.subsets, evaluate)
            record = load_json(RESULTS_DIR / "sweep" / grid / f"{name}.json", "grids")
            scored.append(score_cell(record, metrics, oracles[folder]))
    save_json(scored, CELLS_FILE)
    track(StageRecord("sweep_score", flatten({"evaluate": params["evaluate"]}),
                      {"cells": len(scored), "oracles": len(oracles)}, artifacts=[CELLS_FILE]))


if __name__ == "__main__":
    main()
