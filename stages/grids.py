"""Stage `grids`: every forget set, retrain oracle and unlearning run of the experiment grids.

A grid (params section `sweep`, `levels`, `rum_compare` or `entanglement`;
src/memunlearn/grid.py) is methods x scores x kinds x strategies x seeds.
For each grid and (score, kind, seed) this stage chooses the forget set F once,
trains its retrain oracle on R = D \\ F once, and keeps both with their
outputs under `data/sweep/<grid>/<score>-<kind>-<seed>/` (oracle.json says
what F is made of: class histogram, planted noise, ES of F and of each RUM
subset). Each cell of that forget set then unlearns from the original model
(docs/methods.md §4-5) and keeps its record in
`results/sweep/<grid>/<cell>.json` and the unlearned model's outputs and
checkpoint under `data/sweep/<grid>/cells/`. `sweep_score` scores them
against the oracle (§6), so an evaluation setting never reruns a cell.

One process runs every grid (a stage process pays about 10 s of start-up:
torch, MLflow, DVC's lock): the oracle and unlearning caches (by content:
training/oracle.py, unlearning/cache.py) make a rerun after a grown list, an
edit of one grid or an unrelated params edit load every finished run
instead of computing it, and an interrupted run keeps what it finished. Each forget set
and each cell is its own MLflow run (`<grid>_oracle@...`, `<grid>_cell@...`)
under the invocation's parent run.
"""
from _common import (FIRST_EPOCH_GRADS, MEMORIZE_DIR, ORACLE_CACHE, PREPARED, PROXIES_DIR, RESULTS_DIR,
                     SWEEP_DATA_DIR, TRAIN_DIR, UNLEARN_CACHE, device, flatten, load_params, log, record, stage,
                     stage_name, track)

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


@stage
def main() -> None:
    params = load_params("train", "methods", *GRIDS)
    if elsewhere(params, {"text": text_grids}):
        return
    configs = {grid: from_params(SweepConfig, params[grid], grid) for grid in GRIDS}  # every grid checked first
    for config in configs.values():
        config.check_methods(params["methods"])
    recipe = from_params(TrainConfig, params["train"], "train")
    info = load_info(PREPARED / "meta.json")
    train, test = load_split(PREPARED / "train.npz"), load_split(PREPARED / "test.npz")
    original, _ = load_checkpoint(TRAIN_DIR / "model.pt", "train")
    scores = load_table(MEMORIZE_DIR / "scores.parquet", "memorize"), load_table(PROXIES_DIR / "proxies.parquet",
                                                                                 "proxies")
    planted = load_table(PREPARED / "label_noise.csv", "prepare")["example_id"]
    # per device, once for every grid on it: the original's (N, D) embeddings; the first-epoch gradients and the
    # validation split the methods read (the seed is each cell's)
    sources = functools.cache(lambda dev: score_sources(train, original, info, *scores, dev))
    contexts = functools.cache(lambda dev: unlearn_context(info, recipe, dev, 0, PREPARED, FIRST_EPOCH_GRADS))
    metrics = {}
    for grid, config in configs.items():
        dev = device(config.device)
        metrics |= run_grid(grid, config, params, recipe, info, train, test, original, sources(dev), planted,
                            contexts(dev))
    track(StageRecord(stage_name(), flatten({grid: params[grid] for grid in GRIDS}), metrics))


def run_grid(grid, config, params, recipe, info, train, test, original, sources, planted, context) -> dict:
    """One grid's forget sets, oracles and cells (files, MLflow runs); its counts for the stage's record."""
    dev = context.device
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
    return {f"{grid}.forget_sets": cells.groupby(["group_score", "kind", "seed"]).ngroups, f"{grid}.cells": len(cells)}


def text_grids(params, paths, on_row=None) -> StageRecord:
    """A text run: each grid by modality/text/grid.py."""
    metrics = {}
    for grid in GRIDS:
        done = text_stage.run(params, paths, on_row, grid=grid, record=record)
        metrics |= {f"{grid}.{key}": value for key, value in done.metrics.items()}
    return StageRecord(stage_name(), metrics=metrics)


if __name__ == "__main__":
    main()
