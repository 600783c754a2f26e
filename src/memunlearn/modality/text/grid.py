"""Stage ``grids`` on text, one grid: first-epoch gradient ascent's ablations as an experiment grid (docs/methods.md §8).

A grid's methods may be named ``methods.<name>`` variant blocks of ``first_epoch_ga`` (``layers``: embedding,
block:<i>, head, all; ``gradients``: first_epoch | last_epoch), beside any text method. The grid's ``seed`` is
the training seed of the original model and of each oracle (init and data order, as benchmarks/text_first_epoch_ga.py):
first-epoch ascent draws nothing, so seeds that only reseeded the unlearning would repeat one number. Per seed
one original is trained (or loaded: modality/text/cache.py) recording the first-epoch gradients of every layer
set the grid's first-epoch cells ascend along; per (score, kind, seed) the forget set is chosen (kind
``canaries``: every copy) and its oracle retrained on R = D \\ F; each cell unlearns a copy of its seed's
original through the unlearning cache. Written as the image path writes them:

- ``data/sweep/<grid>/<score>-<kind>-<seed>/``: forget.csv, model.pt (the oracle), metrics.json (its text
  metrics), oracle.json (seconds, the forget set's facts, the original's metrics as ``original_*``);
- ``data/sweep/<grid>/cells/<cell>.pt`` and ``<cell>.json`` (the unlearned model and its text metrics, the
  image path's ``.npz`` outputs);
- ``results/sweep/<grid>/<cell>.json``: the cell's record, with the findings' facts (``TEXT_FACTS``).

Text metrics per model (modality/text/metrics.py ``model_row``): F/R/validation/test perplexity and next-token
accuracy, canary exposure per copy count (``exposure_<c>x``), loss MIA (the cell's seed).
"""
from __future__ import annotations

import copy
import logging
import time
from typing import Any, Callable, Mapping

import numpy as np

from ...config import from_params
from ...data.corpus import load_tokenizer
from ...devices import resolve_device
from ...evaluation.text import lm_metrics
from ...grid import KEYS, SweepConfig, cell_name, forget_set_name
from ...io import load_table, save_json, save_table
from ...partition import PartitionConfig, ScoreSources, apply_partition, choose_forget_set, describe_forget_set
from ...tracking import StageRecord, flatten
from ...training.lm import save_lm_checkpoint
from ...training.lm_grads import layer_parameters, layer_set_bytes
from ...training.recipe import TrainConfig
from ...unlearning import UnlearnConfig, UnlearnContext
from ...unlearning.cache import cached_strategy
from ..base import StagePaths
from .common import load_prepared, logged, numeric
from .metrics import model_row
from .cache import cached_oracle
from .trained import ascent, cached_original, recorded_layers

log = logging.getLogger("memunlearn")
TEXT_FACTS = ("source", "layers", "params", "stored_mib", "dense_mib", "val_ppl_change", "calibration_gap")
MIB = 2 ** 20


def ablation_facts(original, grads, source: str | None, layers, unlearned_row: Mapping[str, float],
                   original_row: Mapping[str, float], n_train: int) -> dict[str, Any]:
    """A cell's facts for the first-epoch gradient ascent paper's findings: its gradient source and layer set, their parameter count, the
    gradients stored ahead (MiB, the embedding as sparse rows; last-epoch gradients are taken at unlearning time,
    nothing stored), the same dense, validation perplexity change and F's token accuracy past the calibration
    goal (the original's validation accuracy)."""
    out: dict[str, Any] = {k: np.nan for k in TEXT_FACTS}
    out["val_ppl_change"] = unlearned_row["validation_ppl"] / original_row["validation_ppl"] - 1
    out["calibration_gap"] = unlearned_row["forget_acc"] - original_row["validation_acc"]
    if source is None:
        out |= {"source": "", "layers": ""}
        return out
    names = layer_parameters(original, layers)
    params = dict(original.named_parameters())
    count = sum(params[n].numel() for n in names)
    out |= {"source": source, "layers": "+".join(layers), "params": count, "dense_mib": n_train * count * 4 / MIB,
            "stored_mib": layer_set_bytes(grads, names) / MIB if source == "first_epoch" else 0.0}
    return out


def run(params: Mapping[str, Any], paths: StagePaths, on_row=None, *, grid: str,
        record: Callable[[StageRecord], str | None]) -> StageRecord:
    config = from_params(SweepConfig, params[grid], grid)
    config.check_methods(params["methods"])
    recipe = from_params(TrainConfig, params["train"], "train")
    dev = resolve_device(config.device)
    data = load_prepared(paths.prepared)
    copies = data.labels()
    tokenizer = load_tokenizer(data.tokenizer_json)
    sources = ScoreSources(load_table(paths.memorize / "scores.parquet", "memorize"),
                           load_table(paths.proxies / "proxies.parquet", "proxies"), copies)
    data_dir, results_dir = paths.sweep / grid, paths.results / "sweep" / grid
    cells = config.cells(grid)
    plans = {m: from_params(UnlearnConfig, {"method": m, "strategy": "vanilla", "device": config.device}, grid)
             .plan({m: params["methods"].get(m) or {}}) for m in config.methods}
    ascents = {m: ascent(plan) for m, plan in plans.items()}
    record_layers = recorded_layers(ascents.values())
    originals: dict[int, tuple] = {}

    def original_of(seed: int):
        """The seed's original model (the train stage's seeds: text_canaries.train_lm), its recorded gradients,
        its record and text metrics on every split (F: the canaries)."""
        if seed not in originals:
            model, grads, run_record, cached = cached_original(paths.oracle_cache, data, recipe, seed, record_layers)
            canaries = apply_partition(data.train, data.canaries[["example_id"]].assign(subset=""))
            row = model_row(model, data, canaries, tokenizer, data.canaries, seed)
            originals[seed] = (model, grads, {**run_record, "cached": cached}, row)
            log.info("%s: original seed %d (%.1f s%s)", grid, seed, run_record["seconds"], ", cached" if cached else "")
        return originals[seed]

    for keys, forget_cells in cells.groupby(["group_score", "kind", "seed"], sort=False):
        forget_set = dict(zip(("group_score", "kind", "seed"), keys))
        seed = int(forget_set["seed"])
        folder = data_dir / forget_set_name(forget_set)
        original, grads, original_record, original_row = original_of(seed)
        # -- the forget set and its oracle ----------------------------------------------------------------------
        partition = from_params(PartitionConfig, config.partition_params(**forget_set), f"{grid}.partition")
        forget = choose_forget_set(partition, sources)
        parts = apply_partition(data.train, forget)
        forgotten = data.canaries[data.canaries["example_id"].isin(parts.forget.example_ids.numpy())]
        oracle, oracle_run, cached = cached_oracle(paths.oracle_cache, parts.retain, data.info, recipe, seed)
        save_table(forget, folder / "forget.csv")
        save_lm_checkpoint(oracle, recipe.model, data.info, folder / "model.pt")
        oracle_row = model_row(oracle, data, parts, tokenizer, forgotten, seed)
        save_json(oracle_row, folder / "metrics.json")
        original_forget_acc = lm_metrics(original, parts.forget, data.info.pad_id)["token_acc"]  # this F's
        oracle_record = {"seconds": oracle_run["seconds"], "cached": cached,
                         **describe_forget_set(forget, sources, data.canary_ids),
                         "original_seconds": original_record["seconds"], "original_cached": original_record["cached"],
                         "original_record_layers": "+".join(record_layers),
                         **{f"original_{k}": v for k, v in original_row.items() if not k.startswith("forget_")},
                         "original_forget_acc": original_forget_acc}
        save_json(oracle_record, folder / "oracle.json")
        record(StageRecord(f"{grid}_oracle@{forget_set_name(forget_set)}",
                           flatten({"train": params["train"], "cell": {"grid": grid, **forget_set}}),
                           numeric(oracle_record), artifacts=[folder / "forget.csv"],
                           datasets={"F": logged(parts.forget, copies), "R": logged(parts.retain, copies)}))
        log.info("%s: oracle %s (%.1f s%s)", grid, folder.name, oracle_run["seconds"], ", cached" if cached else "")
        # -- its cells ------------------------------------------------------------------------------------------
        for cell in forget_cells.to_dict("records"):
            name = cell_name(cell)
            method_params = {cell["method"]: params["methods"].get(cell["method"]) or {}}
            plan = from_params(UnlearnConfig, {"method": cell["method"], "strategy": cell["strategy"],
                                               "seed": seed, "device": config.device}, grid).plan(method_params)
            model = copy.deepcopy(original)
            ctx = UnlearnContext(data.info, recipe, dev, seed, first_epoch_grads=grads, heldout=data.validation)
            model, steps, seconds, was_cached = cached_strategy(cell["strategy"], model, parts.subsets, parts.retain,
                                                                plan, ctx, paths.unlearn_cache)
            start = time.perf_counter()
            row = model_row(model, data, parts, tokenizer, forgotten, seed)
            source, layers = ascents[cell["method"]] or (None, ())
            cell_record = {
                **{k: cell[k] for k in KEYS}, "seconds": seconds, "cached": was_cached,
                "oracle_seconds": oracle_record["seconds"], "forget_size": len(parts.forget), "steps": len(steps),
                "planted_noise_in_forget": oracle_record.get("planted_noise_in_forget"),
                **ablation_facts(original, grads, source, layers, row, original_row, len(data.train)),
                **{f"original_{k}": v for k, v in original_row.items() if k.startswith("exposure_")},
                "original_validation_ppl": original_row["validation_ppl"], "original_forget_acc": original_forget_acc,
                "evaluate_seconds": time.perf_counter() - start,
            }
            save_lm_checkpoint(model, recipe.model, data.info, data_dir / "cells" / f"{name}.pt")
            save_json(row, data_dir / "cells" / f"{name}.json")
            run_id = record(StageRecord(f"{grid}_cell@{name}", flatten({"train": params["train"],
                                                                     "methods": method_params, "cell": cell}),
                                        numeric({**cell_record, **row}),
                                        datasets={"F": logged(parts.forget, copies), "R": logged(parts.retain, copies),
                                                  "T": logged(data.test)}))
            save_json({**cell_record, "run_id": run_id}, results_dir / f"{name}.json")
            log.info("%s: cell %s (%.1f s%s)", grid, name, seconds, ", cached" if was_cached else "")
    forget_sets = cells.groupby(["group_score", "kind", "seed"]).ngroups
    return StageRecord("grids", metrics={"forget_sets": forget_sets, "cells": len(cells),
                                                "originals": len(originals)})

