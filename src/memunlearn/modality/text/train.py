"""Stage ``train`` on text: the original language model, with learning events (per-sequence token statistics,
TokenEventRecorder; per-epoch loss and next-token accuracy, SequenceEventRecorder) from the training forward
passes and, per ``train_records.first_epoch_grads``, each sequence's first-epoch gradient (training/lm_grads.py:
the token embedding stored sparsely)."""
from __future__ import annotations

import math
import time
from typing import Any, Mapping

import pandas as pd

from ...config import from_params
from ...devices import resolve_device
from ...io import save_json, save_table
from ...models import build_lm
from ...seeding import derive_seed, generator
from ...tracking import StageRecord
from ...training.lm import (LMTrainConfig, SequenceEventRecorder, TokenEventRecorder, fit_lm, save_lm_checkpoint,
                            score_sequences)
from ...training.lm_grads import LMFirstEpochGradRecorder, save_lm_grads
from ...training.recipe import RecordConfig, TrainConfig
from ..base import StagePaths
from .common import load_prepared, logged


def run(params: Mapping[str, Any], paths: StagePaths, on_row=None) -> StageRecord:
    recipe = from_params(TrainConfig, params["train"], "train")
    records = from_params(RecordConfig, params["train_records"], "train_records")
    data = load_prepared(paths)
    info, dev = data.info, resolve_device(recipe.device)
    # the seeds of experiments/text_canaries.py's train_lm (the benchmark's and tests' original model)
    model = build_lm(recipe.model, info.vocab_size, info.seq_len, seed=derive_seed(recipe.seed, "lm_init"))
    events = TokenEventRecorder(data.train.example_ids, info.pad_id)
    curves = SequenceEventRecorder(data.train.example_ids, recipe.epochs)
    first_epoch = (LMFirstEpochGradRecorder(model, data.train.example_ids, info.pad_id, records.first_epoch_grads)
                   if records.first_epoch_grads else None)
    heldout = data.validation if data.validation is not None else data.test

    def end_of_epoch(row):
        row["validation_ppl"] = perplexity_and_accuracy(model, heldout, info.pad_id)[0]
        if on_row is not None:
            on_row(row)

    start = time.perf_counter()
    history = fit_lm(model, data.train, LMTrainConfig.of(recipe), info.pad_id, generator(recipe.seed, "lm_order"),
                     on_step=first_epoch, events=curves, on_batch=events, device=dev, on_row=end_of_epoch)
    seconds = time.perf_counter() - start
    save_lm_checkpoint(model, recipe.model, info, paths.train / "model.pt")
    save_table(events.to_frame(), paths.train / "learning_events.parquet")
    save_table(curves.to_frame(), paths.train / "learning_curves.parquet")
    save_table(pd.DataFrame(history), paths.train / "history.csv")
    grad_bytes = {}
    if first_epoch:
        grads = first_epoch.result()
        save_lm_grads(grads, paths.train / "first_epoch_grads.pt")
        grad_bytes = grads.nbytes()
    (train_ppl, train_acc), (test_ppl, test_acc) = (perplexity_and_accuracy(model, split, info.pad_id)
                                                    for split in (data.train, data.test))
    metrics = {
        "train_acc": train_acc, "test_acc": test_acc,  # next-token accuracy
        "train_ppl": train_ppl, "test_ppl": test_ppl,
        "validation_ppl": history[-1]["validation_ppl"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": seconds,  # recording included
        "learning_event_seconds": events.seconds,
        "curvature_seconds": 0.0, "curvature_rademacher_seconds": 0.0,
        "first_epoch_grad_seconds": first_epoch.seconds if first_epoch else 0.0,
        "first_epoch_grad_bytes": grad_bytes,
        "examples_processed": len(data.train) * recipe.epochs,
        "device": str(dev),
    }
    save_json(metrics, paths.metrics / "train.json")
    return StageRecord("train", metrics=metrics, history=history, artifacts=[paths.train / "history.csv",
                                                                            paths.train / "model.pt"],
                       datasets={"D": logged(data.train, data.copies()), "T": logged(data.test)})


def perplexity_and_accuracy(model, split, pad_id: int) -> tuple[float, float]:
    """Token-weighted perplexity and next-token accuracy (evaluation/text.py's lm_metrics, without importing the
    evaluation package into this stage's deps)."""
    s = score_sequences(model, split, pad_id)
    tokens = max(float(s["tokens"].sum()), 1.0)
    return math.exp(float(s["nll"].sum()) / tokens), float(s["correct"].sum()) / tokens
