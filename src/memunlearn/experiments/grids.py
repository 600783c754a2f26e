"""One experiment grid run on any modality: its forget sets, their retrain oracles and its cells (the ``grids``
stage; docs/methods.md §4-5).

A grid (grid.py ``GridConfig``) is methods x scores x kinds x strategies x
seeds. Per (score, kind, seed) the forget set F is chosen once and its
oracle trained on R = D \\ F once (through the modality's oracle cache); each
cell of that forget set unlearns a copy of its seed's original (the
modality's ``grid_originals``) through the unlearning cache and keeps what
scoring it needs (the modality's ``observe``), so the ``grids_evaluate`` stage
scores every cell without unlearning again. Files, per grid:

- ``<data>/<grid>/<score>-<kind>-<seed>/``: forget.csv, model.pt (the oracle),
  its observation (``outputs.*``) and oracle.json (training seconds, what F is
  made of, the modality's facts about the original);
- ``<data>/<grid>/cells/<cell>.pt`` and the cell's observation;
- ``<results>/<grid>/<cell>.json``: the cell's record (its keys, seconds, the
  forget set's facts, the modality's cell facts, its MLflow run id).
"""
from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable, Mapping

from ..config import ConfigError, from_params
from ..grid import KEYS, ORACLE_OBSERVATION, TUNED, GridConfig, cell_name, forget_set_name
from ..io import save_json, save_table
from ..partition import PartitionConfig, apply_partition, choose_forget_set, describe_forget_set
from ..tracking import StageRecord, dataset_digest, flatten
from ..training.recipe import recipe_for
from ..unlearning import UnlearnConfig
from ..unlearning.cache import cached_strategy

log = logging.getLogger("memunlearn")
FORGET_SET_FACTS = ("entanglement_score", "largest_class_share", "planted_noise_in_forget", "originals")  # oracle.json


@dataclasses.dataclass(frozen=True)
class GridPaths:
    data: Path  # data/grids: <grid>/<forget set>/ and <grid>/cells/
    results: Path  # results/grids: <grid>/<cell>.json
    train: Path  # the train stage's folder (the original model, its first-epoch gradients)
    oracle_cache: Path | None
    unlearn_cache: Path | None


def tuned_plan(method: str, strategy: str, values: Mapping[str, Any], blocks: Mapping[str, Mapping[str, Any]],
               seed: int, device: str, section: str = TUNED):
    """The UnlearnPlan of an arm at ``values`` (``{block, subset_params}``, experiments/tune.py): ``methods.<method>``
    with the tuned keys merged over it, every other block as params give it (full RUM's per-subset methods)."""
    merged = {**blocks, method: {**(blocks.get(method) or {}), **values["block"]}}
    return from_params(UnlearnConfig, {"method": method, "strategy": strategy, "seed": seed, "device": device,
                                       "subset_params": values["subset_params"]}, section).plan(merged)


def tuned_values(best: Mapping[str, Any], method: str, strategy: str, where: str = "data/tune/best.json"
                 ) -> Mapping[str, Any]:
    """The ``{block, subset_params}`` arm (``method``, ``strategy``) of the tuned grid runs with (``best.json``)."""
    entry = (best.get("arms") or {}).get(f"{method}/{strategy}")
    if entry is None:
        raise ConfigError(f"{where} has no tuned values for {method}/{strategy}: run the tune stage "
                          f"(dvc repro tune) after editing {TUNED}")
    return {"block": entry["block"], "subset_params": entry["subset_params"]}


def run_grid(grid: str, config: GridConfig, params: Mapping[str, Any], modality, data, recipe, sources, device,
             paths: GridPaths, record: Callable[[StageRecord], str | None],
             per_seed: Callable[[int], tuple[Any, Any]] | None = None,
             tuned: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Every forget set, oracle and cell of ``grid`` (``sources``: the partition's ScoreSources of the shared
    original; ``per_seed``: seed -> (GridOriginal, ScoreSources) of each seed's own, experiments/originals.py, which
    ``originals: per_seed`` needs); each logged by ``record`` as its own MLflow run. ``tuned``: the tune stage's
    best.json, whose values each cell runs with (the tuned grid). Returns the grid's counts for the stage's record."""
    shared = {"partition": dict(config.partition), "fixed_group_score": config.fixed_group_score,
              "device": config.device, "originals": config.originals}
    data_dir, results_dir = paths.data / grid, paths.results / grid
    plans = {m: from_params(UnlearnConfig, {"method": m, "strategy": "vanilla", "device": config.device}, grid)
             .plan({m: params["methods"].get(m) or {}}) for m in config.methods}
    if config.originals == "per_seed":
        if per_seed is None:
            raise ValueError(f"{grid}.originals: per_seed needs each seed's original (experiments/originals.py)")
        originals = per_seed
    else:
        original_of = modality.grid_originals(data, recipe, plans, paths.train, paths.oracle_cache, device)
        originals = lambda seed: (original_of(seed), sources)  # noqa: E731
    oracle_recipe = recipe_for(params, "oracle")  # train with oracle.recipe over it
    oracle_keys = (params.get("oracle") or {}).get("recipe") or {}  # for the oracles' MLflow params

    cells = config.cells(grid)
    for keys, forget_cells in cells.groupby(["group_score", "kind", "seed"], sort=False):
        forget_set = dict(zip(("group_score", "kind", "seed"), keys))
        folder = data_dir / forget_set_name(forget_set)
        original, sources_of_seed = originals(int(forget_set["seed"]))
        # -- the forget set and its oracle ----------------------------------------------------------------------
        partition = from_params(PartitionConfig, config.partition_params(**forget_set, section=grid),
                                f"{grid}.partition")
        forget = choose_forget_set(partition, sources_of_seed)
        parts = apply_partition(data.train, forget)
        oracle, seconds, cached = modality.cached_oracle(parts.retain, data.info, oracle_recipe, device,
                                                         forget_set["seed"],
                                                         paths.oracle_cache)
        save_table(forget, folder / "forget.csv")
        modality.save_model(oracle, recipe.model, data.info, folder / "model.pt")
        modality.observe(oracle, data, parts, int(forget_set["seed"]), device, folder / ORACLE_OBSERVATION)
        oracle_record = {"seconds": seconds, "cached": cached, "originals": config.originals,
                         **describe_forget_set(forget, sources_of_seed, data.planted),
                         **modality.forget_set_facts(original, data, parts)}
        save_json(oracle_record, folder / "oracle.json")
        record(StageRecord(f"{grid}_oracle@{forget_set_name(forget_set)}",
                           flatten({"train": params["train"], "oracle": {"recipe": oracle_keys}, grid: shared,
                                    "cell": {"grid": grid, **forget_set}}),
                           flatten(oracle_record), artifacts=[folder / "forget.csv"],
                           datasets={"F": modality.dataset_view(parts.forget, data),
                                     "R": modality.dataset_view(parts.retain, data)}))
        log.info("%s: oracle %s (%.1f s%s)", grid, folder.name, seconds, ", cached" if cached else "")
        # -- its cells ------------------------------------------------------------------------------------------
        for cell in forget_cells.to_dict("records"):
            name = cell_name(cell)
            tuned_steps = {}  # the tuned grid's per-step values, for the cell's MLflow params
            if tuned is None:
                method_params = {cell["method"]: params["methods"].get(cell["method"]) or {}}
                plan = from_params(UnlearnConfig, {"method": cell["method"], "strategy": cell["strategy"],
                                                   "seed": cell["seed"], "device": config.device},
                                   grid).plan(method_params)
            else:
                values = tuned_values(tuned, cell["method"], cell["strategy"])
                plan = tuned_plan(cell["method"], cell["strategy"], values, params["methods"], cell["seed"],
                                  config.device, grid)
                method_params = {cell["method"]: plan.method_params[cell["method"]]}
                tuned_steps = {"unlearn": {"subset_params": values["subset_params"]}}
            ctx = dataclasses.replace(original.context, seed=cell["seed"]).with_oracle_recipe(oracle_recipe)
            model, steps, seconds, was_cached = cached_strategy(cell["strategy"], copy.deepcopy(original.model),
                                                                parts.subsets, parts.retain, plan, ctx,
                                                                paths.unlearn_cache)
            observed = modality.observe(model, data, parts, int(cell["seed"]), device, data_dir / "cells" / name)
            cell_record = {
                **{k: cell[k] for k in KEYS}, "seconds": seconds, "cached": was_cached,
                "oracle_seconds": oracle_record["seconds"], "forget_size": len(parts.forget), "steps": len(steps),
                **{k: oracle_record[k] for k in FORGET_SET_FACTS if k in oracle_record},
                **modality.cell_facts(original, plans[cell["method"]], observed, oracle_record, data),
            }
            modality.save_model(model, recipe.model, data.info, data_dir / "cells" / f"{name}.pt")
            used = {"train": params["train"], "methods": method_params, **tuned_steps, "cell": cell,
                    grid: {"device": config.device}}
            run = record(StageRecord(f"{grid}_cell@{name}", flatten(used),
                                     flatten({k: v for k, v in cell_record.items() if k not in KEYS}),
                                     datasets={"F": modality.dataset_view(parts.forget, data),
                                               "R": modality.dataset_view(parts.retain, data),
                                               "T": modality.dataset_view(data.test, data)}))
            # grids_report logs and registers the unlearned model into this run (one process for every model)
            forgotten = modality.dataset_view(parts.forget, data)
            tracking = {"run_id": run, "forget_digest": dataset_digest(forgotten.example_ids, forgotten.labels)}
            save_json({**cell_record, **tracking}, results_dir / f"{name}.json")
            log.info("%s: cell %s (%.1f s%s)", grid, name, seconds, ", cached" if was_cached else "")
    return {f"{grid}.forget_sets": cells.groupby(["group_score", "kind", "seed"]).ngroups, f"{grid}.cells": len(cells)}
