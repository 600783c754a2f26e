"""First-epoch gradient ascent on text: train a small GPT-2 with planted canaries, unlearn them by first-epoch gradient ascent.

One original model (first-epoch gradients of every layer recorded: the
embedding sparse, the rest dense), one retrain oracle (trained without any
canary), then ``lm_first_epoch_ga`` with F = every canary copy, once per
(gradient source, layer set): the paper's ablations (first- vs all-epochs
gradients, and last-epoch ones as a control; embedding vs last block vs output layer vs all). Each row: the
canaries' exposure, validation perplexity, F's loss, the stored bytes and
the seconds. Everything derives from ``seed``.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import pandas as pd
import torch

from ...data.corpus import load_tokenizer
from ...data.text_prepare import PreparedText, TextDataConfig
from .evaluation import canary_exposures, lm_metrics, loss_mia
from ...models.base import build_lm
from ...seeding import derive_seed, generator
from .lm import LMTrainConfig, SequenceEventRecorder, fit_lm
from .lm_grads import ALL, LMFirstEpochGradRecorder, LMFirstEpochGrads, grads_at, layer_parameters, layer_set_bytes
from .lm_first_epoch_ga import LMFirstEpochGAConfig, lm_first_epoch_ga

DEFAULT_LAYER_SETS = (("embedding",), ("block:-1",), ("head",), ("all",))


@dataclass
class TrainedLM:
    model: torch.nn.Module
    history: list[dict]
    events: pd.DataFrame  # example_id, epoch, loss, token_acc
    seconds: float
    all_epochs_grads: LMFirstEpochGrads | None = None  # each sequence's gradients summed over every epoch
    record_seconds: dict[str, float] | None = None  # seconds inside each gradient recorder (in ``seconds``)


def train_lm(prepared: PreparedText, recipe: LMTrainConfig, seed: int, *, exclude=(), recorder_layers=None,
             all_epochs_layers=None):
    """A model trained on the training split minus ``exclude`` ids; returns (TrainedLM, first-epoch grads of
    ``recorder_layers`` or None); ``all_epochs_layers``: also each sequence's gradients of that layer set summed
    over every epoch (``TrainedLM.all_epochs_grads``)."""
    data = prepared.train.drop_ids(list(exclude)) if len(exclude) else prepared.train
    model = build_lm(recipe.model, prepared.info.vocab_size, prepared.info.seq_len, derive_seed(seed, "lm_init"))
    recorders = [LMFirstEpochGradRecorder(model, data.example_ids, prepared.info.pad_id, layers, every_epoch=every)
                 if layers else None for layers, every in ((recorder_layers, False), (all_epochs_layers, True))]
    hooks = [r for r in recorders if r is not None]
    events = SequenceEventRecorder(data.example_ids, recipe.epochs)
    start = time.perf_counter()
    history = fit_lm(model, data, recipe, prepared.info.pad_id, generator(seed, "lm_order"),
                     on_step=(lambda *step: [hook(*step) for hook in hooks]) if hooks else None, events=events)
    seconds = time.perf_counter() - start
    first, every = (r.result() if r is not None else None for r in recorders)
    trained = TrainedLM(model, history, events.to_frame(), seconds, every,
                        {source: r.seconds for source, r in zip(("first_epoch", "all_epochs"), recorders) if r})
    return trained, first


def canary_study(prepared: PreparedText, data_cfg: TextDataConfig, recipe: LMTrainConfig,
                 ga: LMFirstEpochGAConfig, seed: int = 0, layer_sets=DEFAULT_LAYER_SETS,
                 sources=("first_epoch", "last_epoch")) -> dict:
    """Tables: ``exposure`` (per canary: original, oracle), ``ablation`` (one row per source x layer set)."""
    tokenizer, pad = load_tokenizer(prepared.tokenizer_json), prepared.info.pad_id
    canary_ids = prepared.canaries["example_id"].to_numpy()
    forget = prepared.train.select_ids(canary_ids)
    retain = prepared.train.drop_ids(canary_ids)
    original, first = train_lm(prepared, recipe, seed, recorder_layers=(ALL,),
                               all_epochs_layers=(ALL,) if "all_epochs" in sources else None)
    oracle, _ = train_lm(prepared, recipe, seed, exclude=canary_ids)

    def exposures(model):
        return canary_exposures(model, tokenizer, prepared.canaries, data_cfg.canary_template,
                                data_cfg.canary_digits)

    table = exposures(original.model).rename(columns={"exposure": "original"})
    table["oracle"] = exposures(oracle.model)["exposure"]
    grads = {"first_epoch": first, "all_epochs": original.all_epochs_grads}
    if "last_epoch" in sources:
        grads["last_epoch"] = grads_at(original.model, prepared.train, pad, (ALL,))
    oracle_forget = lm_metrics(oracle.model, forget, pad)["token_acc"]
    original_val = lm_metrics(original.model, prepared.validation, pad)["perplexity"]
    record_seconds = {}  # one pass of per-sequence gradients of a layer set: what recording it in epoch 1 costs
    for layers in layer_sets:
        start = time.perf_counter()
        grads_at(original.model, prepared.train, pad, layers)
        record_seconds["+".join(layers)] = time.perf_counter() - start
    rows = []
    for source in sources:
        for layers in layer_sets:
            model = copy.deepcopy(original.model)
            start = time.perf_counter()
            model, trace = lm_first_epoch_ga(model, grads[source], forget, prepared.validation,
                                             _with_layers(ga, layers), pad)
            seconds = time.perf_counter() - start
            after = exposures(model)["exposure"]
            names = layer_parameters(model, layers)
            forget_acc = lm_metrics(model, forget, pad)["token_acc"]
            val_ppl = lm_metrics(model, prepared.validation, pad)["perplexity"]
            rows.append({"source": source, "layers": "+".join(layers), "steps": len(trace.etas),
                         "reached": trace.reached, "forget_score": trace.scores[-1],
                         "exposure_mean": float(after.mean()),
                         "exposure_gap": float(after.mean() - table["oracle"].mean()),  # to the oracle's
                         **{f"exposure_{c}x": float(after[table["copies"] == c].mean())
                            for c in sorted(table["copies"].unique())},
                         "forget_acc": forget_acc, "forget_acc_gap": forget_acc - oracle_forget,
                         "val_ppl": val_ppl, "val_ppl_change": val_ppl / original_val - 1,
                         "mia_forget": loss_mia(model, retain, prepared.test, forget, pad, seed)["mia_forget"],
                         "stored_mib": layer_set_bytes(grads[source], names) / 2**20,
                         "params": sum(dict(model.named_parameters())[n].numel() for n in names),
                         "record_seconds": record_seconds["+".join(layers)],
                         "seconds": seconds})
            table[f"{source}:{'+'.join(layers)}"] = after.to_numpy()
    metrics = {name: lm_metrics(m.model, prepared.validation, pad)["perplexity"]
               for name, m in (("original", original), ("oracle", oracle))}
    return {"exposure": table, "ablation": pd.DataFrame(rows), "val_ppl": metrics, "original": original,
            "oracle": oracle, "grads": first,
            "mia": {name: loss_mia(m.model, retain, prepared.test, forget, pad, seed)
                    for name, m in (("original", original), ("oracle", oracle))},
            "forget_loss": {"original": lm_metrics(original.model, forget, pad)["loss"],
                            "oracle": lm_metrics(oracle.model, forget, pad)["loss"]},
            "forget_acc": {"original": lm_metrics(original.model, forget, pad)["token_acc"], "oracle": oracle_forget}}


def _with_layers(cfg: LMFirstEpochGAConfig, layers) -> LMFirstEpochGAConfig:
    return LMFirstEpochGAConfig(**{**cfg.__dict__, "layers": tuple(layers)})
