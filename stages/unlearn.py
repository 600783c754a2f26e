"""Stage `unlearn`: apply a registered method to the forget set, vanilla or through RUM (docs/methods.md §4-5)."""
from _common import (FIRST_EPOCH_GRADS, METRICS_DIR, PARTITION_DIR, PREPARED, TRAIN_DIR, UNLEARN_CACHE, UNLEARN_DIR,
                     device, flatten, load_params, registered, stage, tag_param, track)
from _modality import elsewhere

import dataclasses

import pandas as pd

from memunlearn.config import from_params
from memunlearn.data import load_info, load_split
from memunlearn.io import load_table, save_json, save_table
from memunlearn.modality.text import unlearn as text_stage
from memunlearn.partition import apply_partition
from memunlearn.tracking import StageRecord
from memunlearn.training import TrainConfig, load_checkpoint, save_checkpoint
from memunlearn.unlearning.cache import cached_strategy
from memunlearn.unlearning import UnlearnConfig
from memunlearn.unlearning.context import unlearn_context


@stage
def main() -> None:
    params = load_params("train", "unlearn", "methods")
    if elsewhere(params, {"text": text_stage.run}):
        return
    recipe = from_params(TrainConfig, params["train"], "train")
    config = from_params(UnlearnConfig, params["unlearn"], "unlearn")
    plan = config.plan(params["methods"])
    info = load_info(PREPARED / "meta.json")
    parts = apply_partition(load_split(PREPARED / "train.npz"), load_table(PARTITION_DIR / "forget.csv", "partition"))
    model, model_name = load_checkpoint(TRAIN_DIR / "model.pt", "train")
    ctx = unlearn_context(info, recipe, device(config.device), config.seed, PREPARED, FIRST_EPOCH_GRADS)

    model, steps, seconds, cached = cached_strategy(config.strategy, model, parts.subsets, parts.retain, plan, ctx,
                                                    UNLEARN_CACHE)
    save_checkpoint(model, model_name, info, UNLEARN_DIR / "model.pt")
    save_table(pd.DataFrame([dataclasses.asdict(s) for s in steps]), UNLEARN_DIR / "steps.csv")
    metrics = {"seconds": seconds, "cached": cached, "strategy": config.strategy, "method": config.method,
               "steps": len(steps)}
    save_json(metrics, METRICS_DIR / "unlearn.json")
    unlearned = registered(model, "unlearned", info, method=config.method, strategy=config.strategy,
                           forget_kind=tag_param("partition.kind"))
    track(StageRecord("unlearn", flatten(params), metrics, artifacts=[UNLEARN_DIR / "steps.csv"],
                      models={"unlearned_model": unlearned}, datasets={"F": parts.forget, "R": parts.retain}))


if __name__ == "__main__":
    main()
