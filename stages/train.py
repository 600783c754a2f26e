"""Stage `train`: the original model, with learning events recorded from the same forward pass (and, per
`train_records`, the modality's other training records: loss curvature, first-epoch per-example gradients); or,
with `train.init` set, the original trained elsewhere, loaded instead (no training records)."""
from _common import (METRICS_DIR, PREPARED, ROOT, TRAIN_DIR, WORKSPACE, device, flatten, load_params, log_epoch,
                     registered, stage, track, tracking_target)

import pandas as pd

from memunlearn.config import from_params
from memunlearn.sources import INIT_SOURCE, same_as_fingerprinted
from memunlearn.io import load_json, save_json, save_table
from memunlearn.forgotten import without_forgotten
from memunlearn.modality import load_modality
from memunlearn.models.init import registry_weights
from memunlearn.tracking import StageRecord, claim_alias
from memunlearn.training.recipe import RecordConfig, recipe_for


@stage
def main() -> None:
    params = load_params("modality", "train", "train_records")
    modality = load_modality(params["modality"], PREPARED)
    recipe = recipe_for(params, "original")
    records = from_params(RecordConfig, params["train_records"], "train_records")
    data = without_forgotten(modality.load(PREPARED))
    dev = device(recipe.device)
    if recipe.init:  # a model trained elsewhere: loaded, evaluated, registered; train.epochs is not used
        fingerprint = same_as_fingerprinted(recipe.init, load_json(ROOT / INIT_SOURCE, "sources"), WORKSPACE)
        model, metrics = modality.load_original(data, recipe, dev, WORKSPACE,
                                                registry_weights(fingerprint, tracking_target))
        metrics |= {f"init_{k}": fingerprint[k] for k in ("sha256", "version") if k in fingerprint}
        history, artifacts = [], []
    else:
        model, metrics, history, artifacts = modality.train_original(data, recipe, records, dev, TRAIN_DIR,
                                                                     log_epoch)
    modality.save_model(model, recipe.model, data.info, TRAIN_DIR / "model.pt")
    save_table(pd.DataFrame(history), TRAIN_DIR / "history.csv")
    save_json(metrics, METRICS_DIR / "train.json")
    original = registered(model, "original", data.info, modality.model_card(data.info), model=recipe.model,
                          **({"init": recipe.init} if recipe.init else {}))
    track(StageRecord("train", flatten(params), metrics, history, [TRAIN_DIR / "history.csv", *artifacts],
                      models={"original_model": original},
                      datasets={"D": modality.dataset_view(data.train, data),
                                "T": modality.dataset_view(data.test, data)}))
    claim_alias(tracking_target(), "original")  # @production, once: deletion requests start there (docs/requests.md)


if __name__ == "__main__":
    main()
