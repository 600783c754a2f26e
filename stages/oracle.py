"""Stage `oracle`: retrain from scratch on R = D \\ F, the reference every metric compares with."""
from _common import (METRICS_DIR, ORACLE_CACHE, ORACLE_DIR, PARTITION_DIR, PREPARED, device, flatten, load_params,
                     log_epoch, registered, stage, tag_param, track)
from _modality import elsewhere

from memunlearn.config import from_params
from memunlearn.data import load_info, load_split
from memunlearn.io import load_table, save_json
from memunlearn.modality.text import oracle as text_stage
from memunlearn.partition import apply_partition
from memunlearn.tracking import StageRecord
from memunlearn.training import TrainConfig, save_checkpoint
from memunlearn.training.oracle import OracleConfig, cached_oracle


@stage
def main() -> None:
    params = load_params("train", "oracle")
    if elsewhere(params, {"text": text_stage.run}):
        return
    recipe = from_params(TrainConfig, params["train"], "train")
    config = from_params(OracleConfig, params["oracle"], "oracle")
    info = load_info(PREPARED / "meta.json")
    parts = apply_partition(load_split(PREPARED / "train.npz"), load_table(PARTITION_DIR / "forget.csv", "partition"))

    model, seconds, cached = cached_oracle(parts.retain, info, recipe, device(recipe.device), config.seed,
                                           ORACLE_CACHE, on_row=log_epoch)
    save_checkpoint(model, recipe.model, info, ORACLE_DIR / "model.pt")
    metrics = {"seconds": seconds, "examples_processed": len(parts.retain) * recipe.epochs, "cached": cached}
    save_json(metrics, METRICS_DIR / "oracle.json")
    oracle = registered(model, "oracle", info, forget_kind=tag_param("partition.kind"))
    track(StageRecord("oracle", flatten(params), metrics, models={"oracle_model": oracle},
                      datasets={"F": parts.forget, "R": parts.retain}))


if __name__ == "__main__":
    main()
