"""Stage `forgetting_quality`: LiRA-style forgetting quality of the unlearning challenge (docs/methods.md §6).

Unlearns `copies` times and retrains `copies` times from scratch, then scores each forget example by how well
its confidence tells the two apart (memunlearn.experiments.forgetting_quality ``score_copies``, scored by
memunlearn.evaluation.lira), over the modality's sides: how it makes and observes a copy.
"""
from _common import (METRICS_DIR, ORACLE_CACHE, PARTITION_DIR, PREPARED, RESULTS_DIR, TRAIN_DIR, UNLEARN_CACHE,
                     Timer, device, flatten, load_params, stage, track)

from memunlearn.config import from_params
from memunlearn.experiments.forgetting_quality import ForgettingQualityConfig, score_copies
from memunlearn.io import load_table, save_json, save_table
from memunlearn.forgotten import without_forgotten
from memunlearn.modality import load_modality
from memunlearn.partition import apply_partition
from memunlearn.tracking import StageRecord
from memunlearn.training.recipe import recipe_for
from memunlearn.unlearning import UnlearnConfig


@stage
def main() -> None:
    params = load_params("modality", "train", "oracle", "unlearn", "methods", "forgetting_quality")
    modality = load_modality(params["modality"], PREPARED)
    recipe = recipe_for(params, "original")
    config = from_params(ForgettingQualityConfig, params["forgetting_quality"], "forgetting_quality")
    evaluated = config.resolve(from_params(UnlearnConfig, params["unlearn"], "unlearn"))
    plan = evaluated.plan(params["methods"])
    data = without_forgotten(modality.load(PREPARED))
    parts = apply_partition(data.train, load_table(PARTITION_DIR / "forget.csv", "partition"))
    ctx = modality.unlearn_context(data, recipe, device(config.device), config.seed, TRAIN_DIR)
    ctx = ctx.with_oracle_recipe(recipe_for(params, "oracle"))  # the retrained copies'
    sides = modality.lira_sides(data, parts, evaluated.strategy, plan, ctx, TRAIN_DIR, ORACLE_CACHE, UNLEARN_CACHE)

    with Timer() as timer:
        result = score_copies(sides, parts.forget.example_ids.numpy(), ctx, config.copies, config.null_baseline)
    save_table(result.table(), RESULTS_DIR / "forgetting_quality.csv")
    metrics = {**result.metrics(), "method": evaluated.method, "strategy": evaluated.strategy,
               "seconds": timer.seconds}
    save_json(metrics, METRICS_DIR / "forgetting_quality.json")
    track(StageRecord("forgetting_quality", flatten(params), metrics,
                      artifacts=[RESULTS_DIR / "forgetting_quality.csv"],
                      datasets={"F": modality.dataset_view(parts.forget, data),
                                "R": modality.dataset_view(parts.retain, data)}))


if __name__ == "__main__":
    main()
