"""Verification without a retrain oracle (docs/requests.md "The gates, and what they can and cannot
prove"): three gates, each a figure and a threshold.

(a) membership audit: a loss attack (score: the true-class probability p_y, higher = member) scores the candidate
    on F and on a reference sample of held-out examples; F must look held out: |AUC - 0.5| <= ``audit_margin`` (a
    95% bootstrap CI is reported). Its calibration on the starting model (retain vs validation examples) is reported
    as the attack's power; the direction stays fixed (a well-generalizing model gives a calibration AUC near 0.5,
    whose side is noise);
(b) utility: test accuracy drops by at most ``max_utility_drop``;
(c) no over-forgetting: F's accuracy is at least the reference's accuracy minus ``max_overforgetting``.

The reference (``requests.reference``) stands for F under a retrain. ``retrain``: where the memorize stage's exact
scores cover F, each forgotten example is matched with held-out examples that a model that never saw them treats
as the subset models that never saw the forgotten example treat it: its rank in D by out-of-subset accuracy
(``acc_out``) picks the held-out example at the same rank by the starting model's p_y (which never saw held-out
examples), so a mislabeled example, which a retrain gets wrong, is compared with held-out examples the model gets
wrong. ``class`` (and ``retrain`` without exact scores for F): held-out examples of F's classes, which a model
mostly gets right, so a request for mislabeled examples fails (a) and (c) when it forgets them properly.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data.splits import DatasetInfo, ImageSplit
from ..seeding import derive_seed
from ..training.loop import accuracy, predict_proba, true_class_prob
from .config import RequestsConfig

BOOTSTRAP = 1000


@dataclass(frozen=True)
class Gate:
    name: str
    figure: float
    threshold: str  # how the figure is judged, e.g. "|AUC - 0.5| <= 0.15"
    passed: bool
    detail: str = ""


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half (the Mann-Whitney AUC)."""
    if not len(positive) or not len(negative):
        return float("nan")
    diff = positive[:, None] - negative[None, :]  # (P, N)
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def auc_ci(positive: np.ndarray, negative: np.ndarray, seed: int) -> tuple[float, float]:
    """95% percentile-bootstrap CI of ``auc`` (both samples resampled)."""
    rng = np.random.default_rng(derive_seed(seed, "requests/audit_ci"))
    draws = [auc(rng.choice(positive, len(positive)), rng.choice(negative, len(negative))) for _ in range(BOOTSTRAP)]
    low, high = np.quantile(draws, [0.025, 0.975])
    return float(low), float(high)


@dataclass(frozen=True)
class OutOfSubset:
    """The exact scores' retrain stand-in: out-of-subset accuracy (``acc_out``: the share of the subset models that
    did not train on an example and get it right) of each forgotten example, and of every example of D."""

    forget: np.ndarray  # (|F|,) in F's order; NaN where no subset model left the example out
    train: np.ndarray  # (|D|,) D's known ones, the ranks' reference


def out_of_subset(exact: pd.DataFrame | None, forget_ids: Sequence[int], column: str = "acc_out"
                  ) -> OutOfSubset | None:
    """The exact scores' out-of-subset figure (``column``: image ``acc_out``, text ``ll_out``) of F (NaN where the
    table has none) and of D: for any version of the lineage, as it is a property of the example and the recipe on
    D, not of a model; None without a table."""
    if exact is None or column not in exact:
        return None
    values = exact.set_index("example_id")[column]
    return OutOfSubset(values.reindex(list(forget_ids)).to_numpy(dtype=float), values.dropna().to_numpy(dtype=float))


def retrain_matched(out: OutOfSubset, heldout_start_p: np.ndarray, per_example: int, seed: int) -> np.ndarray:
    """Indices into the held-out split, ``per_example`` per forgotten example: for each, a rank u drawn uniformly
    within its tie block of D's ``acc_out`` (e.g. [0.1, 1.0] for the 90% of D every out-model gets right), then the
    held-out example at rank u by the starting model's true-class probability."""
    rng = np.random.default_rng(derive_seed(seed, "requests/retrain_matched"))
    everyone = np.sort(out.train)
    low = np.searchsorted(everyone, out.forget, side="left") / len(everyone)  # (|F|,) the tie block's ranks
    high = np.searchsorted(everyone, out.forget, side="right") / len(everyone)
    ranks = rng.uniform(np.repeat(low, per_example), np.repeat(high, per_example))  # (|F| * per_example,)
    by_p = np.argsort(heldout_start_p, kind="stable")  # held-out, least to most confident on its label
    return by_p[np.minimum((ranks * len(by_p)).astype(np.int64), len(by_p) - 1)]


def class_matched(forget: ImageSplit, heldout: ImageSplit, per_example: int, seed: int) -> ImageSplit:
    """``per_example`` held-out examples of the same class per forgotten example (with replacement where a class
    has too few), drawn with ``seed``: the non-members F is compared with."""
    rng = np.random.default_rng(derive_seed(seed, "requests/class_matched"))
    labels = heldout.labels.numpy()
    picks = []
    for label, count in zip(*np.unique(forget.labels.numpy(), return_counts=True)):
        pool = np.flatnonzero(labels == label)
        if len(pool):
            picks.append(rng.choice(pool, count * per_example, replace=len(pool) < count * per_example))
    return heldout.take(np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64))


PREDICT_BATCH = 256  # eval batches: on a 1-thread CPU the small CNN's forward is ~2x faster at 256 than at 1024


class _Outputs:
    """Softmax outputs of one model, one forward pass per split however many figures read them."""

    def __init__(self, model: nn.Module, info: DatasetInfo, device):
        self.model, self.info, self.device, self.probs = model, info, device, {}

    def __call__(self, name: str, split: ImageSplit) -> torch.Tensor:  # (N, C)
        if name not in self.probs:
            self.probs[name] = predict_proba(self.model, split, self.info, self.device, batch_size=PREDICT_BATCH)
        return self.probs[name]

    def true_prob(self, name: str, split: ImageSplit) -> np.ndarray:  # (N,) p_y: the attack's score
        return true_class_prob(self(name, split), split.labels).numpy()

    def accuracy(self, name: str, split: ImageSplit) -> float:
        return accuracy(self(name, split), split.labels) if len(split) else float("nan")


def verify(start: nn.Module, candidate: nn.Module, forget: ImageSplit, retain: ImageSplit, heldout: ImageSplit,
           test: ImageSplit, info: DatasetInfo, device, config: RequestsConfig,
           out_of_subset: OutOfSubset | None = None) -> tuple[list[Gate], dict]:
    """The gates and every figure behind them (accuracies before/after, the attack's power on the start).
    ``out_of_subset``: the exact scores' figures for F and D, None where there are none (class-matched reference)."""
    members = retain.take(np.random.default_rng(derive_seed(config.seed, "requests/members")).choice(
        len(retain), min(len(retain), len(heldout)), replace=False))
    before, after = _Outputs(start, info, device), _Outputs(candidate, info, device)
    heldout_p = before.true_prob("heldout", heldout)
    calibration = auc(before.true_prob("members", members), heldout_p)
    known = (np.isfinite(out_of_subset.forget) if config.reference == "retrain" and out_of_subset is not None
             else np.zeros(len(forget), dtype=bool))  # (|F|,) examples with a retrain stand-in
    reference = "held-out examples matched by out-of-subset accuracy" if known.all() else \
        "class-matched held-out examples" if not known.any() else \
        f"held-out examples matched by out-of-subset accuracy ({(~known).sum()} of F by class: no out-of-subset model)"
    matched = class_matched(forget.take(np.flatnonzero(~known)), heldout, config.heldout_per_example, config.seed)
    if known.any():
        stand_in = OutOfSubset(out_of_subset.forget[known], out_of_subset.train)
        matched = matched.concat(heldout.take(retrain_matched(stand_in, heldout_p, config.heldout_per_example,
                                                              config.seed)))
    forget_p, matched_p = after.true_prob("forget", forget), after.true_prob("matched", matched)
    audit = auc(forget_p, matched_p)
    low, high = auc_ci(forget_p, matched_p, config.seed)
    audit_before = auc(before.true_prob("forget", forget), before.true_prob("matched", matched))
    figures = {"audit_auc": audit, "audit_auc_ci": [low, high], "audit_auc_before": audit_before,
               "attack_calibration_auc": calibration, "test_acc_before": before.accuracy("test", test),
               "test_acc": after.accuracy("test", test), "forget_acc_before": before.accuracy("forget", forget),
               "forget_acc": after.accuracy("forget", forget), "matched_heldout_acc": after.accuracy("matched", matched),
               "matched_heldout_size": len(matched), "reference": reference,
               "forget_out_of_subset_acc": float(np.mean(out_of_subset.forget[known])) if known.any() else None}
    drop = figures["test_acc_before"] - figures["test_acc"]
    gap = figures["matched_heldout_acc"] - figures["forget_acc"]
    gates = [
        Gate("membership_audit", audit, f"abs(AUC - 0.5) <= {config.audit_margin}",
             abs(audit - 0.5) <= config.audit_margin,
             f"AUC of F vs {len(matched)} {reference} {audit:.3f} (95% CI {low:.3f}-{high:.3f}; "
             f"{audit_before:.3f} on the starting model)"),
        Gate("utility", drop, f"test accuracy drop <= {config.max_utility_drop}", drop <= config.max_utility_drop,
             f"test accuracy {figures['test_acc_before']:.4f} -> {figures['test_acc']:.4f}"),
        Gate("no_overforgetting", gap, f"reference accuracy - F accuracy <= {config.max_overforgetting}",
             gap <= config.max_overforgetting,
             f"F accuracy {figures['forget_acc']:.3f}, accuracy of the {reference} "
             f"{figures['matched_heldout_acc']:.3f}"),
    ]
    return gates, figures


def gate_rows(gates: list[Gate]) -> list[dict]:
    return [asdict(g) for g in gates]


def failed(gates: list[Gate]) -> list[Gate]:
    return [g for g in gates if not g.passed]
