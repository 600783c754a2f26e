"""Stage `forgetting_quality`: LiRA-style forgetting quality of the unlearning challenge (docs/methods.md §6).

Unlearns the original model `copies` times and retrains `copies` times from
scratch, then scores each forget example by how well its confidence tells the
two apart (memunlearn.experiments.forgetting_quality, scored by memunlearn.evaluation.lira).
"""
from _common import (FIRST_EPOCH_GRADS, METRICS_DIR, ORACLE_CACHE, PARTITION_DIR, PREPARED, RESULTS_DIR, TRAIN_DIR,
                     UNLEARN_CACHE, Timer, device, flatten, load_params, stage, track)
from _modality import elsewhere

from memunlearn.config import from_params
from memunlearn.data import load_info, load_split
from memunlearn.experiments.forgetting_quality import ForgettingQualityConfig, forgetting_quality
from memunlearn.io import load_table, save_json, save_table
from memunlearn.modality.text import forgetting_quality as text_stage
from memunlearn.partition import apply_partition
from memunlearn.tracking import StageRecord
from memunlearn.training import TrainConfig, load_checkpoint
from memunlearn.unlearning import UnlearnConfig
from memunlearn.unlearning.context import unlearn_context


@stage
def main() -> None:
    params = load_params("train", "unlearn", "methods", "forgetting_quality")
    if elsewhere(params, {"text": text_stage.run}):
        return
    recipe = from_params(TrainConfig, params["train"], "train")
    config = from_params(ForgettingQualityConfig, params["forgetting_quality"], "forgetting_quality")
    evaluated = config.resolve(from_params(UnlearnConfig, params["unlearn"], "unlearn"))
    plan = evaluated.plan(params["methods"])
    info = load_info(PREPARED / "meta.json")
    parts = apply_partition(load_split(PREPARED / "train.npz"), load_table(PARTITION_DIR / "forget.csv", "partition"))
    model, _ = load_checkpoint(TRAIN_DIR / "model.pt", "train")
    test = load_split(PREPARED / "test.npz")
    ctx = unlearn_context(info, recipe, device(config.device), config.seed, PREPARED, FIRST_EPOCH_GRADS)

    with Timer() as timer:
        result = forgetting_quality(model, parts, test, evaluated.strategy, plan, ctx, config.copies,
                                    config.null_baseline, ORACLE_CACHE, UNLEARN_CACHE)
    save_table(result.table(), RESULTS_DIR / "forgetting_quality.csv")
    metrics = {**result.metrics(), "method": evaluated.method, "strategy": evaluated.strategy,
               "seconds": timer.seconds}
    save_json(metrics, METRICS_DIR / "forgetting_quality.json")
    track(StageRecord("forgetting_quality", flatten(params), metrics,
                      artifacts=[RESULTS_DIR / "forgetting_quality.csv"]))


if __name__ == "__main__":
    main()
