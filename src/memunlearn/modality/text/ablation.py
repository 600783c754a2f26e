"""First-epoch gradient ascent's ablations on a text grid (docs/methods.md §8): which gradients a method ascends
along, which layer sets an original records for them, and the facts a cell keeps for the paper's findings.

A grid's methods may be named ``methods.<name>`` variant blocks of ``first_epoch_ga`` (``layers``: embedding,
block:<i>, head, all; ``gradients``: first_epoch | all_epochs | last_epoch), beside any text method. The grid's
``seed`` is the training seed of the original model and of each oracle (init and data order, as
benchmarks/text_first_epoch_ga.py): first-epoch ascent draws nothing, so seeds that only reseeded the unlearning
would repeat one number.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from .lm_grads import ALL, layer_parameters, layer_set_bytes
from .lm_first_epoch_ga import from_image_config
from ...unlearning.first_epoch_ga import FIRST_EPOCH, STORED

FIRST_EPOCH_GA = "first_epoch_ga"
ABLATION_FACTS = ("source", "layers", "params", "stored_mib", "dense_mib", "val_ppl_change", "calibration_gap")
GRID_METRICS = ("exposure_mean", "forget_exposure", "validation_ppl", "val_ppl_change", "stored_mib")  # summarized
MIB = 2 ** 20


def ascent(plan) -> tuple[str, tuple[str, ...]] | None:
    """(gradient source, layer set) of a first_epoch_ga plan's method block; None for another method."""
    if plan.registered(plan.method) != FIRST_EPOCH_GA:
        return None
    cfg = from_image_config(plan.step_config(plan.method, None))
    return cfg.gradients, tuple(cfg.layers)


def recorded_layers(ascents: Iterable[tuple[str, tuple[str, ...]] | None], source: str = FIRST_EPOCH
                    ) -> tuple[str, ...]:
    """The layer sets an original must record for ``source`` (first_epoch, all_epochs): every such ascent's, once
    (``all`` covers every other); None entries (other methods) record nothing."""
    layers = sorted({layer for a in ascents if a is not None and a[0] == source for layer in a[1]})
    return (ALL,) if ALL in layers else tuple(layers)


def recordings(ascents: Iterable[tuple[str, tuple[str, ...]] | None]) -> dict[str, tuple[str, ...]]:
    """What an original records while training for these ascents: {stored source: layer set}, sources with none
    left out (trained.py ``cached_original``'s ``layers``)."""
    ascents = list(ascents)
    return {source: layers for source in STORED if (layers := recorded_layers(ascents, source))}


def ablation_facts(original, grads, source: str | None, layers, unlearned_row: Mapping[str, float],
                   original_row: Mapping[str, float], n_train: int) -> dict[str, Any]:
    """A cell's facts for the first-epoch gradient ascent paper's findings: its gradient source and layer set,
    their parameter count, the gradients stored ahead (MiB, the embedding as sparse rows; last-epoch gradients
    are taken at unlearning time, nothing stored), the same dense, validation perplexity change and F's token
    accuracy past the calibration goal (the original's validation accuracy). ``grads``: the store of ``source``
    (first- or all-epochs; all-epochs gradients take the same bytes: the same rows, summed)."""
    out: dict[str, Any] = {k: np.nan for k in ABLATION_FACTS}
    out["val_ppl_change"] = unlearned_row["validation_ppl"] / original_row["validation_ppl"] - 1
    out["calibration_gap"] = unlearned_row["forget_acc"] - original_row["validation_acc"]
    if source is None:
        out |= {"source": "", "layers": ""}
        return out
    names = layer_parameters(original, layers)
    params = dict(original.named_parameters())
    count = sum(params[n].numel() for n in names)
    out |= {"source": source, "layers": "+".join(layers), "params": count, "dense_mib": n_train * count * 4 / MIB,
            "stored_mib": layer_set_bytes(grads, names) / MIB if source in STORED else 0.0}
    return out
