"""Stage `train`: the original model, with learning events recorded from the same forward pass (and, per
`train_records`, loss curvature and first-epoch per-example gradients)."""
from _common import (FIRST_EPOCH_GRADS, METRICS_DIR, PREPARED, TRAIN_DIR, Timer, device, flatten, load_params,
                     log_epoch, registered, stage, track, tracking_target)
from _modality import elsewhere

import pandas as pd

from memunlearn.config import from_params
from memunlearn.data import load_info, load_split
from memunlearn.io import save_json, save_table
from memunlearn.modality.text import train as text_stage
from memunlearn.models import build_model
from memunlearn.seeding import generator
from memunlearn.tracking import StageRecord, claim_alias
from memunlearn.training import (CurvatureRecorder, FirstEpochGradRecorder, LearningEventRecorder, RecordConfig,
                                 TrainConfig, accuracy, fit, predict_proba, save_checkpoint, save_first_epoch_grads)


@stage
def main() -> None:
    params = load_params("train", "train_records")
    if elsewhere(params, {"text": text_stage.run}):
        return
    recipe = from_params(TrainConfig, params["train"], "train")
    records = from_params(RecordConfig, params["train_records"], "train_records")
    train, test = load_split(PREPARED / "train.npz"), load_split(PREPARED / "test.npz")
    info = load_info(PREPARED / "meta.json")
    dev = device(recipe.device)

    model = build_model(recipe.model, info.in_channels, info.num_classes, info.image_size, seed=recipe.seed)
    save_checkpoint(model, recipe.model, info, TRAIN_DIR / "model_init.pt")
    events = LearningEventRecorder(train.example_ids)
    curvature = (CurvatureRecorder(train, info, dev, records.curvature_h, records.curvature_batch_size,
                                   records.curvature_estimators, records.curvature_rademacher_h,
                                   records.curvature_draws, recipe.seed)
                 if records.curvature else None)
    first_epoch = (FirstEpochGradRecorder(model, train.example_ids, records.first_epoch_grads)
                   if records.first_epoch_grads else None)

    def end_of_epoch(epoch, model):
        row = {"test_acc": accuracy(predict_proba(model, test, info, dev), test.labels)}
        return row | (curvature(epoch, model) if curvature else {})

    with Timer() as timer:
        history = fit(model, train, info, recipe, generator(recipe.seed, "train_order"), dev,
                      on_batch=events, on_epoch=end_of_epoch, on_step=first_epoch, on_row=log_epoch,
                      progress="train epochs")
    save_checkpoint(model, recipe.model, info, TRAIN_DIR / "model.pt")
    save_table(events.to_frame(), TRAIN_DIR / "learning_events.parquet")
    if curvature:
        save_table(curvature.to_frame(), TRAIN_DIR / "loss_curvature.parquet")
    if first_epoch:
        save_first_epoch_grads(first_epoch.result(), FIRST_EPOCH_GRADS)
    save_table(pd.DataFrame(history), TRAIN_DIR / "history.csv")
    metrics = {
        "train_acc": accuracy(predict_proba(model, train, info, dev), train.labels),
        "test_acc": history[-1]["test_acc"],
        "seconds": timer.seconds,  # recording included
        "learning_event_seconds": events.seconds,
        "curvature_seconds": curvature.seconds_by_estimator.get("sign_gradient", 0.0) if curvature else 0.0,
        "curvature_rademacher_seconds": curvature.seconds_by_estimator.get("rademacher", 0.0) if curvature else 0.0,
        "first_epoch_grad_seconds": first_epoch.seconds if first_epoch else 0.0,
        "examples_processed": len(train) * recipe.epochs,
        "device": str(dev),
    }
    save_json(metrics, METRICS_DIR / "train.json")
    track(StageRecord("train", flatten(params), metrics, history, [TRAIN_DIR / "history.csv"],
                      models={"original_model": registered(model, "original", info, model=recipe.model)},
                      datasets={"D": train, "T": test}))
    claim_alias(tracking_target(), "original")  # @production, once: deletion requests start there (docs/requests.md)


if __name__ == "__main__":
    main()
