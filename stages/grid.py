"""Stage `grid@<grid>`: every forget set, retrain oracle and unlearning run of one experiment grid.

A grid (params section `sweep`, `levels`, `rum_compare` or `entanglement`;
src/memunlearn/grid.py) is methods x scores x kinds x strategies x seeds.
For each (score, kind, seed) this stage chooses the forget set F once,
trains its retrain oracle on R = D \\ F once, and keeps both with their
outputs under `data/sweep/<grid>/<score>-<kind>-<seed>/` (oracle.json says
what F is made of: class histogram, planted noise, ES of F and of each RUM
subset). Each cell of that forget set then unlearns from the original model
(docs/methods.md §4-5) and keeps its record in
`results/sweep/<grid>/<cell>.json` and the unlearned model's outputs and
checkpoint under `data/sweep/<grid>/cells/`. `sweep_score` scores them
against the oracle (§6), so an evaluation setting never reruns a cell.

One process runs the whole grid: the oracle and unlearning caches (by
content: training/oracle.py, unlearning/cache.py) make a rerun after a grown
list or an unrelated params edit load every finished run instead of
computing it, and an interrupted run keeps what it finished. Each forget set
and each cell is its own MLflow run (`<grid>_oracle@...`, `<grid>_cell@...`)
under the invocation's parent run.
"""
from _common import (FIRST_EPOCH_GRADS, MEMORIZE_DIR, ORACLE_CACHE, PREPARED, PROXIES_DIR, RESULTS_DIR,
                     SWEEP_DATA_DIR, TRAIN_DIR, UNLEARN_CACHE, device, flatten, load_params, log, record, stage,
                     stage_name, track)

import argparse
import copy
import dataclasses
import functools

from _modality import elsewhere

from memunlearn.config import from_params
from memunlearn.data import load_info, load_split
from memunlearn.evaluation import model_outputs
from memunlearn.experiments.cell import run_cell
from memunlearn.grid import GRIDS, KEYS, SweepConfig, cell_name, forget_set_name
from memunlearn.io import load_table, save_json, save_table
from memunlearn.modality.text import grid as text_stage
from memunlearn.partition import (PartitionConfig, apply_partition, choose_forget_set, describe_forget_set,
                                  score_sources)
from memunlearn.tracking import StageRecord, dataset_digest
from memunlearn.training import TrainConfig, load_checkpoint, save_checkpoint
from memunlearn.training.oracle import cached_oracle
from memunlearn.unlearning import UnlearnConfig
from memunlearn.unlearning.context import unlearn_context


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="one experiment grid; dvc.yaml passes its name")
    parser.add_argument("--grid", choices=GRIDS, required=True, help="the params section holding the grid")
    return parser.parse_args()


@stage
def main() -> None:
    grid = arguments().grid
    params = load_params("train", "methods", grid)
    if elsewhere(params, {"text": functools.partial(text_stage.run, grid=grid, record=record)}):
        return
    config = from_params(SweepConfig, params[grid], grid)
    config.check_methods(params["methods"])
    recipe = from_params(TrainConfig, params["train"], "train")
    dev = device(config.device)
    info = load_info(PREPARED / "meta.json")
    train, test = load_split(PREPARED / "train.npz"), load_split(PREPARED / "test.npz")
    original, _ = load_checkpoint(TRAIN_DIR / "model.pt", "train")
    sources = score_sources(train, original, info, load_table(MEMORIZE_DIR / "scores.parquet", "memorize"),
                            load_table(PROXIES_DIR / "proxies.parquet", "proxies"), dev)  # (N, D) once per grid
    planted = load_table(PREPARED / "label_noise.csv", "prepare")["example_id"]
    context = unlearn_context(info, recipe, dev, 0, PREPARED, FIRST_EPOCH_GRADS)  # the seed is each cell's
    shared = {"partition": dict(config.partition), "fixed_group_score": config.fixed_group_score,
              "device": config.device}
    data_dir, results_dir = SWEEP_DATA_DIR / grid, RESULTS_DIR / "sweep" / grid

    cells = config.cells(grid)
    for keys, forget_cells in cells.groupby(["group_score", "kind", "seed"], sort=False):
        forget_set = dict(zip(("group_score", "kind", "seed"), keys))
        folder = data_dir / forget_set_name(forget_set)
        # -- the forget set and its oracle ------------------------------------------------------------------
        partition = from_params(PartitionConfig, config.partition_params(**forget_set), f"{grid}.partition")
        forget = choose_forget_set(partition, sources)
        parts = apply_partition(train, forget)
        oracle, seconds, cached = cached_oracle(parts.retain, info, recipe, dev, forget_set["seed"], ORACLE_CACHE)
        save_table(forget, folder / "forget.csv")
        save_checkpoint(oracle, recipe.model, info, folder / "model.pt")
        model_outputs(oracle, parts.forget, parts.retain, test, parts.subsets, info, dev).save(folder / "outputs.npz")
        oracle_record = {"seconds": seconds, "cached": cached, **describe_forget_set(forget, sources, planted)}
        save_json(oracle_record, folder / "oracle.json")
        record(StageRecord(f"{grid}_oracle@{forget_set_name(forget_set)}",
                           flatten({"train": params["train"], grid: shared, "cell": {"grid": grid, **forget_set}}),
                           flatten(oracle_record), artifacts=[folder / "forget.csv"],
                           datasets={"F": parts.forget, "R": parts.retain}))
        log.info("%s: oracle %s (%.1f s%s)", grid, folder.name, seconds, ", cached" if cached else "")
        # -- its cells --------------------------------------------------------------------------------------
        for cell in forget_cells.to_dict("records"):
            name = cell_name(cell)
            method_params = {cell["method"]: params["methods"].get(cell["method"]) or {}}
            plan = from_params(UnlearnConfig, {"method": cell["method"], "strategy": cell["strategy"],
                                               "seed": cell["seed"], "device": config.device},
                               grid).plan(method_params)
            model = copy.deepcopy(original)  # run_cell unlearns it in place
            ctx = dataclasses.replace(context, seed=cell["seed"])
            cell_record, outputs = run_cell(cell, model, parts, test, plan, ctx, oracle_record, UNLEARN_CACHE)
            outputs.save(data_dir / "cells" / f"{name}.npz")
            save_checkpoint(model, recipe.model, info, data_dir / "cells" / f"{name}.pt")
            used = {"train": params["train"], "methods": method_params, "cell": cell, grid: {"device": config.device}}
            run = record(StageRecord(f"{grid}_cell@{name}", flatten(used),
                                     flatten({k: v for k, v in cell_record.items() if k not in KEYS}),
                                     datasets={"F": parts.forget, "R": parts.retain, "T": test}))
            # sweep_report logs and registers the unlearned model into this run (one process for every model)
            tracking = {"run_id": run, "forget_digest": dataset_digest(parts.forget.example_ids, parts.forget.labels)}
            save_json({**cell_record, **tracking}, results_dir / f"{name}.json")
            log.info("%s: cell %s (%.1f s%s)", grid, name, cell_record["seconds"],
                     ", cached" if cell_record["cached"] else "")
    forget_sets = cells.groupby(["group_score", "kind", "seed"]).ngroups
    track(StageRecord(stage_name(), flatten({grid: params[grid]}), {"forget_sets": forget_sets, "cells": len(cells)}))


if __name__ == "__main__":
    main()
