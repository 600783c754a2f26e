"""Verification without a retrain oracle (docs/requests.md "The gates, and what they can and cannot
prove"): three gates, each a figure and a threshold.

(a) membership audit: a loss attack (score: the true-class probability p_y, higher = member) scores the candidate
    on F and on a class-matched held-out sample; F must look held out: |AUC - 0.5| <= ``audit_margin`` (a 95%
    bootstrap CI is reported). Its calibration on the starting model (retain vs validation examples) is reported
    as the attack's power; the direction stays fixed (a well-generalizing model gives a calibration AUC near 0.5,
    whose side is noise);
(b) utility: test accuracy drops by at most ``max_utility_drop``;
(c) no over-forgetting: F's accuracy is at least the class-matched held-out accuracy minus ``max_overforgetting``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
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
           test: ImageSplit, info: DatasetInfo, device, config: RequestsConfig) -> tuple[list[Gate], dict]:
    """The gates and every figure behind them (accuracies before/after, the attack's power on the start)."""
    matched = class_matched(forget, heldout, config.heldout_per_example, config.seed)
    members = retain.take(np.random.default_rng(derive_seed(config.seed, "requests/members")).choice(
        len(retain), min(len(retain), len(heldout)), replace=False))
    before, after = _Outputs(start, info, device), _Outputs(candidate, info, device)
    calibration = auc(before.true_prob("members", members), before.true_prob("heldout", heldout))
    forget_p, matched_p = after.true_prob("forget", forget), after.true_prob("matched", matched)
    audit = auc(forget_p, matched_p)
    low, high = auc_ci(forget_p, matched_p, config.seed)
    audit_before = auc(before.true_prob("forget", forget), before.true_prob("matched", matched))
    figures = {"audit_auc": audit, "audit_auc_ci": [low, high], "audit_auc_before": audit_before,
               "attack_calibration_auc": calibration, "test_acc_before": before.accuracy("test", test),
               "test_acc": after.accuracy("test", test), "forget_acc_before": before.accuracy("forget", forget),
               "forget_acc": after.accuracy("forget", forget), "matched_heldout_acc": after.accuracy("matched", matched),
               "matched_heldout_size": len(matched)}
    drop = figures["test_acc_before"] - figures["test_acc"]
    gap = figures["matched_heldout_acc"] - figures["forget_acc"]
    gates = [
        Gate("membership_audit", audit, f"abs(AUC - 0.5) <= {config.audit_margin}",
             abs(audit - 0.5) <= config.audit_margin,
             f"AUC of F vs {len(matched)} class-matched held-out examples {audit:.3f} (95% CI {low:.3f}-{high:.3f}; "
             f"{audit_before:.3f} on the starting model)"),
        Gate("utility", drop, f"test accuracy drop <= {config.max_utility_drop}", drop <= config.max_utility_drop,
             f"test accuracy {figures['test_acc_before']:.4f} -> {figures['test_acc']:.4f}"),
        Gate("no_overforgetting", gap, f"held-out accuracy of F's classes - F accuracy <= {config.max_overforgetting}",
             gap <= config.max_overforgetting,
             f"F accuracy {figures['forget_acc']:.3f}, class-matched held-out accuracy "
             f"{figures['matched_heldout_acc']:.3f}"),
    ]
    return gates, figures


def gate_rows(gates: list[Gate]) -> list[dict]:
    return [asdict(g) for g in gates]


def failed(gates: list[Gate]) -> list[Gate]:
    return [g for g in gates if not g.passed]
