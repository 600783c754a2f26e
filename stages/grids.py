"""Stage `grids`: every forget set, retrain oracle and unlearning run of the experiment grids.

A grid (params section `ablations`, `levels`, `rum_compare`, `entanglement`, `levels_clean` or `tuned`;
src/memunlearn/grid.py) is methods x scores x kinds x strategies x seeds.
For each grid and (score, kind, seed) the runner (experiments/grids.py)
chooses the forget set F once, trains its retrain oracle on R = D \\ F once,
and keeps both with their outputs under `data/grids/<grid>/<score>-<kind>-<seed>/`;
each cell of that forget set then unlearns its seed's original (docs/methods.md
§4-5) and keeps its record in `results/grids/<grid>/<cell>.json` and the
unlearned model with what scoring it needs under `data/grids/<grid>/cells/`.
`grids_evaluate` scores them against the oracle (§6).

One process runs every grid (a stage process pays about 10 s of start-up:
torch, MLflow, DVC's lock): the oracle and unlearning caches (by content)
make a rerun after a grown list, an edit of one grid or an unrelated params
edit load every finished run instead of computing it, and an interrupted run
keeps what it finished. Each forget set and each cell is its own MLflow run
(`<grid>_oracle@...`, `<grid>_cell@...`) under the invocation's parent run.
"""
from _common import (MEMORIZE_DIR, ORACLE_CACHE, PREPARED, PROXIES_DIR, RESULTS_DIR, GRIDS_DATA_DIR, TRAIN_DIR,
                     SEED_ORIGINAL_CACHE, TUNE_DIR, UNLEARN_CACHE, device, environment, flatten, load_params, record,
                     stage, stage_name, track)

import functools

from memunlearn.config import ConfigError, from_params
from memunlearn.experiments.grids import GridPaths, run_grid
from memunlearn.experiments.originals import StageOutputs, needed_proxies, per_seed_sources, seed_original
from memunlearn.grid import GRIDS, TUNED, GridConfig, grid_sections
from memunlearn.io import load_json, load_table
from memunlearn.forgotten import without_forgotten
from memunlearn.memorization.exact import Execution, ExactConfig
from memunlearn.memorization.proxies import ProxyConfig
from memunlearn.modality import load_modality
from memunlearn.tracking import StageRecord
from memunlearn.training.recipe import RecordConfig, recipe_for
from memunlearn.unlearning.config import init_conflicts


def per_seed(params, configs, modality, data, recipe, dev):
    """seed -> (GridOriginal, ScoreSources) of each seed's own original (experiments/originals.py), for the grids
    with ``originals: per_seed`` on device ``dev``; None if no grid has it."""
    chosen = [grid for grid, config in configs.items() if config.originals == "per_seed"]
    if not chosen:
        return None
    if modality.name != "image" or recipe.init:
        raise ConfigError(f"{chosen[0]}.originals: per_seed trains an image original per seed; set it to shared "
                          "(text grids train an original per seed already; with train.init there is no recipe)")
    proxies = from_params(ProxyConfig, {**params["proxies"], "names": list(needed_proxies(
        set().union(*(configs[grid].scores() for grid in chosen))))}, "proxies")
    records = from_params(RecordConfig, params["train_records"], "train_records")
    memorize = from_params(ExactConfig, params["memorize"], "memorize")
    stage_outputs = StageOutputs(TRAIN_DIR, MEMORIZE_DIR / "scores.parquet", PROXIES_DIR / "proxies.parquet")
    execution = Execution.from_environment(environment())
    subset_recipe = recipe_for(params, "subset")
    return per_seed_sources(modality, data, lambda seed: seed_original(
        modality, data, seed, recipe, records, subset_recipe, memorize, proxies, stage_outputs, SEED_ORIGINAL_CACHE,
        execution, dev), stage_outputs, recipe, dev)


@stage
def main() -> None:
    params = load_params("modality", "train", "train_records", "memorize", "proxies", "oracle", "methods", *GRIDS,
                         TUNED)
    modality = load_modality(params["modality"], PREPARED)
    grids = grid_sections(params["modality"])  # the tuned grid's cells run at the tune stage's values (best.json)
    configs = {grid: from_params(GridConfig, params[grid], grid) for grid in grids}  # every grid checked first
    for config in configs.values():
        config.check_methods(params["methods"])
    recipe = recipe_for(params, "original")
    named = [(f"{grid}.methods[{i}]", m) for grid, config in configs.items() for i, m in enumerate(config.methods)]
    if conflicts := init_conflicts(recipe.init, named, params["methods"]):  # before any work: nothing to ascend along
        raise ValueError(conflicts[0])
    data = without_forgotten(modality.load(PREPARED))
    scores = load_table(MEMORIZE_DIR / "scores.parquet", "memorize"), load_table(PROXIES_DIR / "proxies.parquet",
                                                                                 "proxies")
    # per device, once for every grid on it (image: the original's (N, D) embeddings)
    sources = functools.cache(lambda dev: modality.score_sources(data, *scores, TRAIN_DIR / "model.pt", dev))
    paths = GridPaths(GRIDS_DATA_DIR, RESULTS_DIR / "grids", TRAIN_DIR, ORACLE_CACHE, UNLEARN_CACHE)
    originals = functools.cache(lambda dev: per_seed(params, configs, modality, data, recipe, dev))
    metrics = {}
    for grid, config in configs.items():
        dev = device(config.device)
        tuned = load_json(TUNE_DIR / "best.json", "tune") if grid == TUNED else None
        metrics |= run_grid(grid, config, params, modality, data, recipe, sources(dev), dev, paths, record,
                            originals(dev), tuned)
    for folder in (GRIDS_DATA_DIR / TUNED / "cells", RESULTS_DIR / "grids" / TUNED):  # declared outs, also where
        folder.mkdir(parents=True, exist_ok=True)                                      # the modality tunes nothing
    track(StageRecord(stage_name(), flatten({grid: params[grid] for grid in grids}), metrics))


if __name__ == "__main__":
    main()
