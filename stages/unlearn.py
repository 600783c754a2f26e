"""Stage `unlearn`: apply a registered method to the forget set, vanilla or through RUM (docs/methods.md §4-5)."""
from _common import (METRICS_DIR, PARTITION_DIR, PREPARED, TRAIN_DIR, UNLEARN_CACHE, UNLEARN_DIR, device, flatten,
                     load_params, registered, stage, tag_param, track)

import dataclasses

import pandas as pd

from memunlearn.config import from_params
from memunlearn.io import load_table, save_json, save_table
from memunlearn.forgotten import without_forgotten
from memunlearn.modality import load_modality
from memunlearn.partition import apply_partition
from memunlearn.tracking import StageRecord
from memunlearn.training.recipe import recipe_for
from memunlearn.unlearning import UnlearnConfig
from memunlearn.unlearning.cache import cached_strategy
from memunlearn.unlearning.config import init_conflicts


@stage
def main() -> None:
    params = load_params("modality", "train", "oracle", "unlearn", "methods")
    modality = load_modality(params["modality"], PREPARED)
    recipe = recipe_for(params, "original")
    config = from_params(UnlearnConfig, params["unlearn"], "unlearn")
    plan = config.plan(params["methods"])
    named = [("unlearn.method", config.method), *((f"unlearn.subset_methods.{k}", v)
                                                  for k, v in config.subset_methods.items())]
    if conflicts := init_conflicts(recipe.init, named, params["methods"]):  # before any work: nothing to ascend along
        raise ValueError(conflicts[0])
    data = without_forgotten(modality.load(PREPARED))
    parts = apply_partition(data.train, load_table(PARTITION_DIR / "forget.csv", "partition"))
    model, model_name = modality.load_model(TRAIN_DIR / "model.pt", "train")
    ctx = modality.unlearn_context(data, recipe, device(config.device), config.seed, TRAIN_DIR)
    ctx = ctx.with_oracle_recipe(recipe_for(params, "oracle"))  # the retrain method's

    model, steps, seconds, cached = cached_strategy(config.strategy, model, parts.subsets, parts.retain, plan, ctx,
                                                    UNLEARN_CACHE)
    modality.save_model(model, model_name, data.info, UNLEARN_DIR / "model.pt")
    save_table(pd.DataFrame([dataclasses.asdict(s) for s in steps]), UNLEARN_DIR / "steps.csv")
    metrics = {"seconds": seconds, "cached": cached, "strategy": config.strategy, "method": config.method,
               "steps": len(steps)}
    save_json(metrics, METRICS_DIR / "unlearn.json")
    unlearned = registered(model, "unlearned", data.info, modality.model_card(data.info), method=config.method,
                           strategy=config.strategy, forget_kind=tag_param("partition.kind"))
    track(StageRecord("unlearn", flatten(params), metrics, artifacts=[UNLEARN_DIR / "steps.csv"],
                      models={"unlearned_model": unlearned},
                      datasets={"F": modality.dataset_view(parts.forget, data),
                                "R": modality.dataset_view(parts.retain, data)}))


if __name__ == "__main__":
    main()
