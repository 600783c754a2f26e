"""Stage `oracle`: retrain from scratch on R = D \\ F, the reference every metric compares with."""
from _common import (METRICS_DIR, ORACLE_CACHE, ORACLE_DIR, PARTITION_DIR, PREPARED, device, flatten, load_params,
                     log_epoch, registered, stage, tag_param, track)

from memunlearn.config import from_params
from memunlearn.io import load_table, save_json
from memunlearn.forgotten import without_forgotten
from memunlearn.modality import load_modality
from memunlearn.partition import apply_partition
from memunlearn.tracking import StageRecord
from memunlearn.training.oracle import OracleConfig
from memunlearn.training.recipe import recipe_for


@stage
def main() -> None:
    params = load_params("modality", "train", "oracle")
    modality = load_modality(params["modality"], PREPARED)
    recipe = recipe_for(params, "oracle")  # train with oracle.recipe over it
    config = from_params(OracleConfig, params["oracle"], "oracle")
    data = without_forgotten(modality.load(PREPARED))
    parts = apply_partition(data.train, load_table(PARTITION_DIR / "forget.csv", "partition"))

    model, seconds, cached = modality.cached_oracle(parts.retain, data.info, recipe, device(recipe.device),
                                                    config.seed, ORACLE_CACHE, on_row=log_epoch)
    modality.save_model(model, recipe.model, data.info, ORACLE_DIR / "model.pt")
    metrics = {"seconds": seconds, "examples_processed": len(parts.retain) * recipe.epochs, "cached": cached}
    save_json(metrics, METRICS_DIR / "oracle.json")
    oracle = registered(model, "oracle", data.info, modality.model_card(data.info),
                        forget_kind=tag_param("partition.kind"))
    track(StageRecord("oracle", flatten(params), metrics, models={"oracle_model": oracle},
                      datasets={"F": modality.dataset_view(parts.forget, data),
                                "R": modality.dataset_view(parts.retain, data)}))


if __name__ == "__main__":
    main()
