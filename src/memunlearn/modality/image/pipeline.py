"""The image modality's behaviour (modality/base.py ``Modality``): labelled images (data/prepare.py: subsample,
validation split, planted label noise) and a CNN trained with cross-entropy (training/loop.py).

The original model records learning events from the training forward passes and, per ``train_records``, loss
curvature and first-epoch per-example gradients. Each method imports what it runs, so a stage's DVC deps are the
code of the methods it calls (tests/test_stage_deps.py ``pipeline_names``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...data import VALIDATION_FILE, DatasetInfo, ImageSplit, load_info, load_split, prepare, save_info, save_split
from ...io import load_table, save_table

IMAGE = "image"
FIRST_EPOCH_GRADS = "first_epoch_grads.pt"  # in the train stage's folder
PLANTED = "label_noise.csv"  # the planted-noise ids, in the prepared folder


@dataclass(frozen=True)
class PreparedImages:
    """An image run's prepared data (modality/base.py ``Prepared``)."""

    folder: Path
    train: ImageSplit
    validation: ImageSplit | None  # None when data.validation_fraction is 0
    test: ImageSplit
    info: DatasetInfo

    @property
    def planted(self) -> np.ndarray:
        """The examples whose labels the prepare stage flipped."""
        return load_table(self.folder / PLANTED, "prepare")["example_id"]

    def labels(self) -> pd.Series:
        return pd.Series(self.train.labels.numpy(), index=pd.Index(self.train.example_ids.numpy(), name="example_id"))


class ImageModality:
    name = IMAGE

    def prepare(self, config, raw: Path, out: Path) -> tuple[dict, list[Path]]:
        start = time.perf_counter()
        data = prepare(config, raw)
        seconds = time.perf_counter() - start
        save_split(data.train, out / "train.npz")
        save_split(data.test, out / "test.npz")
        (out / VALIDATION_FILE).unlink(missing_ok=True)  # no stale split when validation_fraction turns 0
        if data.validation is not None:
            save_split(data.validation, out / VALIDATION_FILE)
        save_table(data.flipped, out / PLANTED)
        save_info(data.info, out / "meta.json")
        return {
            "n_train": len(data.train), "n_test": len(data.test), "n_flipped": len(data.flipped),
            "n_validation": len(data.validation) if data.validation is not None else 0,
            "seconds": seconds,
        }, [out / "meta.json", out / PLANTED]

    def load(self, prepared: Path) -> PreparedImages:
        prepared = Path(prepared)
        validation = prepared / VALIDATION_FILE
        return PreparedImages(prepared, load_split(prepared / "train.npz"),
                              load_split(validation) if validation.exists() else None,
                              load_split(prepared / "test.npz"), load_info(prepared / "meta.json"))

    def train_original(self, data: PreparedImages, recipe, records, device, out: Path, on_row=None):
        from ...models import build_model
        from ...seeding import generator
        from ...training import (CurvatureRecorder, FirstEpochGradRecorder, LearningEventRecorder, accuracy, fit,
                                 predict_proba, save_checkpoint, save_first_epoch_grads)

        train, test, info = data.train, data.test, data.info
        model = build_model(recipe.model, info.in_channels, info.num_classes, info.image_size, seed=recipe.seed)
        save_checkpoint(model, recipe.model, info, out / "model_init.pt")
        events = LearningEventRecorder(train.example_ids)
        curvature = (CurvatureRecorder(train, info, device, records.curvature_h, records.curvature_batch_size,
                                       records.curvature_estimators, records.curvature_rademacher_h,
                                       records.curvature_draws, recipe.seed)
                     if records.curvature else None)
        first_epoch = (FirstEpochGradRecorder(model, train.example_ids, records.first_epoch_grads)
                       if records.first_epoch_grads else None)

        def end_of_epoch(epoch, model):
            row = {"test_acc": accuracy(predict_proba(model, test, info, device), test.labels)}
            return row | (curvature(epoch, model) if curvature else {})

        start = time.perf_counter()
        history = fit(model, train, info, recipe, generator(recipe.seed, "train_order"), device,
                      on_batch=events, on_epoch=end_of_epoch, on_step=first_epoch, on_row=on_row,
                      progress="train epochs")
        seconds = time.perf_counter() - start
        save_table(events.to_frame(), out / "learning_events.parquet")
        if curvature:
            save_table(curvature.to_frame(), out / "loss_curvature.parquet")
        if first_epoch:
            save_first_epoch_grads(first_epoch.result(), out / FIRST_EPOCH_GRADS)
        by_estimator = curvature.seconds_by_estimator if curvature else {}
        metrics = {
            "train_acc": accuracy(predict_proba(model, train, info, device), train.labels),
            "test_acc": history[-1]["test_acc"],
            "seconds": seconds,  # recording included
            "learning_event_seconds": events.seconds,
            "curvature_seconds": by_estimator.get("sign_gradient", 0.0),
            "curvature_rademacher_seconds": by_estimator.get("rademacher", 0.0),
            "first_epoch_grad_seconds": first_epoch.seconds if first_epoch else 0.0,
            "examples_processed": len(train) * recipe.epochs,
            "device": str(device),
        }
        return model, metrics, history, []

    def save_model(self, model, name: str, info, path: Path) -> None:
        from ...training import save_checkpoint

        save_checkpoint(model, name, info, path)

    def load_model(self, path: Path, stage: str):
        from ...training import load_checkpoint

        return load_checkpoint(path, stage)

    def cached_oracle(self, retain, info, recipe, device, seed: int, cache: Path | None, on_row=None):
        from ...training.oracle import cached_oracle

        return cached_oracle(retain, info, recipe, device, seed, cache, on_row=on_row)

    def unlearn_context(self, data: PreparedImages, recipe, device, seed: int, train_dir: Path):
        from ...unlearning.context import unlearn_context

        return unlearn_context(data.info, recipe, device, seed, data.folder, Path(train_dir) / FIRST_EPOCH_GRADS)

    def score_sources(self, data: PreparedImages, exact, proxies, original: Path, device):
        from ...partition import score_sources

        return score_sources(data.train, self.load_model(original, "train")[0], data.info, exact, proxies, device)

    def describe_forget_set(self, config, forget, sources, data: PreparedImages) -> dict:
        from ...partition import describe_forget_set, entanglement_kinds_es

        return {**describe_forget_set(forget, sources, data.planted),
                "entanglement_kinds_es": entanglement_kinds_es(config, sources)}

    def dataset_view(self, split, data: PreparedImages):
        return split  # an ImageSplit has example_ids and labels

    def model_card(self, info):
        return None  # tracking.py's image card: the input shape, normalization and class names of ``info``


MODALITY = ImageModality()
