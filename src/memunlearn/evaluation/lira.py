"""LiRA-style forgetting quality of the NeurIPS 2023 unlearning challenge (docs/methods.md §6).

Per forget example, an attacker sees the example's logit-scaled confidence
``log p_y − log(1 − p_y)`` under many unlearned and many retrained models and
tries to tell the two apart with a threshold rule; its best FPR/FNR pair is
turned into an ε at δ = 1e-5, ε into points ``2^(−bucket)``, and the points
are averaged over F. The final score multiplies in the utility ratios:
``F_score · (RA_u / RA_r) · (TA_u / TA_r)``, accuracies averaged over copies.

Followed (the organisers' code and write-up):
- google-deepmind/unlearning_evaluation, ``metric.py`` (functions
  ``compute_logit_scaled_confidence``, ``_get_single_threshold_rates``,
  ``_get_double_threshold_rates``, ``_get_epsilons``,
  ``compute_forget_score_from_confs``) and ``main.py`` (final score);
- Triantafillou et al. 2024, "Are we making progress in unlearning? Findings
  from the first NeurIPS unlearning competition" (arXiv 2406.09073), and the
  organisers' "Evaluation for the NeurIPS Machine Unlearning Competition"
  (2023) note linked from unlearning-challenge.github.io.

Exactly as there: δ = 1e-5; ε capped at 50; the positive class of an example
is whichever sample has the larger median; two rule families over a grid of
100 thresholds per unit: a single threshold ("≥ t is positive", spanning both
samples) and an interval around the peakier sample (buffer 2, width = the
smaller range); per threshold ε = max(log(1−δ−FPR) − log FNR,
log(1−δ−FNR) − log FPR) clipped at 0, FPR = FNR = 0 gives ∞ (capped), a
threshold with exactly one of FPR/FNR zero is discarded (too few samples);
the example's ε is the max over thresholds; a sample whose range is below 1%
of the other's gets the cap. Buckets are [0.5k, 0.5(k+1)) worth 2^(−k),
for k while 0.5(k+1) ≤ ceil(ln(M − 1)) with M the number of unlearned models;
an ε beyond the last bucket scores 0.

Our choices where the reference is silent or fails:
- Confidence computed as ``z_y − logsumexp_{c≠y} z_c`` from the logits in
  float64: the same quantity, exact where the reference's ``+1e-45`` guard
  would clip a probability that underflows.
- Both samples constant: ε = 0 if they are the same constant, else the cap
  (the reference divides 0/0 and then asserts on an empty threshold set).
- No surviving threshold (every one has exactly one zero error rate): ε = 0,
  no evidence of distinguishability (the reference asserts here).
- Interval-rule counts use ``searchsorted`` on the sorted sample instead of a
  (models × thresholds) mask: the same counts, less memory.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..config import ConfigError
from ..data.splits import DatasetInfo, ImageSplit, normalize
from ..partition import PartitionedData
from ..seeding import derive_seed
from ..training.loop import accuracy, batch_positions, predict_proba
from ..unlearning import METHODS, STRATEGIES, UnlearnContext, UnlearnPlan, run_strategy
from ..unlearning import UnlearnConfig

DELTA = 1e-5
EPSILON_CAP = 50.0
THRESHOLDS_PER_UNIT = 100
INTERVAL_BUFFER = 2.0
BUCKET_WIDTH = 0.5
PEAKY_RATIO = 0.01  # a sample's range below 1% of the other's: the cap (reference `_get_epsilons`)
MIN_COPIES = 3  # ceil(ln(M − 1)) = 0 for M = 2: no bucket, every score 0


# ---- pure functions ----------------------------------------------------------

def logit_scaled_confidence(logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> np.ndarray:
    """``log p_y − log(1 − p_y) = z_y − logsumexp_{c≠y} z_c`` per row: logits (N, C), labels (N,) -> (N,) float64."""
    z = torch.as_tensor(logits).double()
    y = torch.as_tensor(labels).long().view(-1, 1)
    others = z.scatter(1, y, float("-inf"))  # drop the true class from the log-sum-exp
    return (z.gather(1, y).squeeze(1) - torch.logsumexp(others, dim=1)).numpy()


def _grid(low: float, high: float) -> np.ndarray:
    return np.linspace(low, high, int(math.ceil((high - low) * THRESHOLDS_PER_UNIT)))


def _count_at_least(sorted_sample: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return len(sorted_sample) - np.searchsorted(sorted_sample, thresholds, side="left")


def _single_threshold_errors(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, FNR) per threshold t of the rule "c ≥ t is positive", t over both samples' span."""
    both = np.concatenate([pos, neg])
    t = _grid(both.min(), both.max())  # (T,)
    tpr = _count_at_least(np.sort(pos), t) / len(pos)
    fpr = _count_at_least(np.sort(neg), t) / len(neg)
    return fpr, 1.0 - tpr


def _inside(sorted_sample: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """How many of the sample lie in [left, right], per interval; an empty interval holds 0."""
    counts = np.searchsorted(sorted_sample, right, side="right") - np.searchsorted(sorted_sample, left, side="left")
    return np.maximum(counts, 0)


def _interval_errors(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, FNR) per interval [l, r] of the rule "inside is the peakier sample" (reference double threshold)."""
    if np.ptp(pos) >= np.ptp(neg):  # positive := the peakier sample, for this family only
        pos, neg = neg, pos
    width = float(np.ptp(pos))
    right = _grid(pos.min() + width - INTERVAL_BUFFER, pos.max() + INTERVAL_BUFFER)  # (R,)
    offsets = np.linspace(-INTERVAL_BUFFER, INTERVAL_BUFFER,
                          int(math.ceil(2 * INTERVAL_BUFFER * THRESHOLDS_PER_UNIT)))  # (L,)
    left = (right[:, None] - width + offsets[None, :]).ravel()  # (R*L,)
    right = np.repeat(right, len(offsets))  # (R*L,)
    tpr = _inside(np.sort(pos), left, right) / len(pos)
    fpr = _inside(np.sort(neg), left, right) / len(neg)
    return fpr, 1.0 - tpr


def epsilon_from_errors(fpr: np.ndarray, fnr: np.ndarray, delta: float = DELTA) -> float:
    """ε of one example from its attack's (FPR, FNR) over thresholds (reference `_get_epsilons`), in [0, cap]."""
    fpr, fnr = np.asarray(fpr, dtype=np.float64), np.asarray(fnr, dtype=np.float64)
    if np.any((fpr == 0) & (fnr == 0)):  # perfect separation
        return EPSILON_CAP
    keep = (fpr > 0) & (fnr > 0)  # one zero rate: too few samples to trust, discarded
    fpr, fnr = fpr[keep], fnr[keep]
    with np.errstate(invalid="ignore", divide="ignore"):  # log of a negative when a rate is 1: NaN, dropped
        eps = np.fmax(np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr))
    eps = eps[~np.isnan(eps)]
    if len(eps) == 0:  # ours: no threshold left, no evidence (the reference asserts)
        return 0.0
    return float(np.clip(eps.max(), 0.0, EPSILON_CAP))


def example_epsilon(unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA) -> float:
    """ε for one forget example from its confidences under the unlearned (M_u,) and retrained (M_r,) models."""
    unlearned, retrained = np.asarray(unlearned, np.float64), np.asarray(retrained, np.float64)
    if np.median(retrained) > np.median(unlearned):  # positive := the larger median
        pos, neg = retrained, unlearned
    else:
        pos, neg = unlearned, retrained
    largest, smallest = max(np.ptp(pos), np.ptp(neg)), min(np.ptp(pos), np.ptp(neg))
    if largest == 0:  # ours: both constant
        return 0.0 if pos[0] == neg[0] else EPSILON_CAP
    if smallest / largest < PEAKY_RATIO:
        return EPSILON_CAP
    fpr_s, fnr_s = _single_threshold_errors(pos, neg)
    fpr_d, fnr_d = _interval_errors(pos, neg)
    return epsilon_from_errors(np.concatenate([fpr_d, fpr_s]), np.concatenate([fnr_d, fnr_s]), delta)


def max_epsilon(num_models: int) -> int:
    """Top of the bucket scale: ceil(ln(M − 1)), the largest ε M samples can show (reference)."""
    if num_models < 2:
        raise ValueError(f"need at least 2 models per side to score, got {num_models}")
    return int(math.ceil(math.log(num_models - 1)))


def bucket_score(epsilon: float, num_models: int) -> float:
    """2^(−k) for ε in [0.5k, 0.5(k+1)), 0 past the last bucket ending at ceil(ln(M − 1))."""
    k = math.floor(epsilon / BUCKET_WIDTH)
    n_buckets = int(max_epsilon(num_models) / BUCKET_WIDTH)
    return 2.0 ** -k if 0 <= k < n_buckets else 0.0


def forget_score(unlearned_confs: np.ndarray, retrained_confs: np.ndarray,
                 delta: float = DELTA) -> tuple[float, np.ndarray, np.ndarray]:
    """(mean points over F, ε (N,), points (N,)) from confidences (M_u, N) and (M_r, N)."""
    unlearned_confs, retrained_confs = np.asarray(unlearned_confs), np.asarray(retrained_confs)
    if unlearned_confs.ndim != 2 or unlearned_confs.shape[1] != retrained_confs.shape[1]:
        raise ValueError(f"confidences must be (models, examples) over the same examples, got "
                         f"{unlearned_confs.shape} and {retrained_confs.shape}")
    eps = np.array([example_epsilon(unlearned_confs[:, i], retrained_confs[:, i], delta)
                    for i in range(unlearned_confs.shape[1])])
    points = np.array([bucket_score(e, unlearned_confs.shape[0]) for e in eps])  # M = unlearned count (reference)
    return float(points.mean()), eps, points


def final_score(forget: float, retain_acc_u: float, retain_acc_r: float, test_acc_u: float, test_acc_r: float) -> float:
    """F_score · (RA_u / RA_r) · (TA_u / TA_r), accuracies averaged over copies (reference `main.py`; not capped)."""
    return forget * (retain_acc_u / retain_acc_r) * (test_acc_u / test_acc_r)


# ---- driver ------------------------------------------------------------------

@dataclass(frozen=True)
class ForgettingQualityConfig:
    """Params section ``forgetting_quality``; ``None`` = take the ``unlearn`` section's value."""

    copies: int = 3  # unlearned and retrained models each (reference: 512)
    null_baseline: bool = True  # also score `copies` more retrained models against the retrained ones: what a
    #                             perfect unlearner gets at this number of copies (the score's small-sample bias)
    method: str | None = None  # None: unlearn.method with all its per-subset settings
    strategy: str | None = None  # None: unlearn.strategy
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        if not isinstance(self.copies, int) or self.copies < MIN_COPIES:
            raise ConfigError(f"forgetting_quality.copies must be an int >= {MIN_COPIES} (with 2 copies the "
                              f"ε scale ceil(ln(copies-1)) is 0 and every score is 0), got {self.copies!r}")
        if self.method is not None:
            METHODS.get(self.method)
        if self.strategy is not None:
            STRATEGIES.get(self.strategy)

    def resolve(self, unlearn: UnlearnConfig) -> UnlearnConfig:
        """The unlearning run to evaluate: ``unlearn`` with this section's method/strategy where given.

        A method given here drops ``unlearn``'s per-subset settings (they were chosen for its method).
        """
        if self.method is None:
            resolved = replace(unlearn, seed=self.seed, device=self.device)
        else:
            resolved = UnlearnConfig(method=self.method, strategy=unlearn.strategy, seed=self.seed, device=self.device)
        resolved = replace(resolved, strategy=self.strategy or resolved.strategy)
        resolved.validate()
        return resolved


@dataclass(frozen=True)
class ForgettingQualityResult:
    example_ids: np.ndarray  # (N,) the forget set, in confidence-column order
    unlearned_confs: np.ndarray  # (copies, N) logit-scaled confidences
    retrained_confs: np.ndarray  # (copies, N)
    epsilons: np.ndarray  # (N,)
    points: np.ndarray  # (N,) 2^(−bucket)
    forget_score: float
    final_score: float
    accuracies: Mapping[str, float]  # {unlearned,retrained}_{forget,retain,test}_acc, means over copies
    seconds: Mapping[str, float]  # {unlearned, retrained}: mean wall time of one copy
    null_forget_score: float = float("nan")  # retrained (disjoint seeds) vs retrained: a perfect unlearner's score

    def table(self) -> pd.DataFrame:
        """Per forget example: ε, points, median confidence on each side."""
        return pd.DataFrame({
            "example_id": self.example_ids, "epsilon": self.epsilons, "points": self.points,
            "median_conf_unlearned": np.median(self.unlearned_confs, axis=0),
            "median_conf_retrained": np.median(self.retrained_confs, axis=0),
        })

    def metrics(self) -> dict[str, Any]:
        return {"forget_score": self.forget_score, "final_score": self.final_score,
                "null_forget_score": self.null_forget_score,
                "copies": int(self.unlearned_confs.shape[0]), "epsilon_mean": float(self.epsilons.mean()),
                "epsilon_median": float(np.median(self.epsilons)), **self.accuracies,
                **{f"{k}_seconds_per_copy": v for k, v in self.seconds.items()}}


@torch.no_grad()
def predict_logits(model: nn.Module, data: ImageSplit, info: DatasetInfo, device: torch.device,
                   batch_size: int = 1024) -> torch.Tensor:
    """Eval-mode logits (N, C) float32 on the CPU, in ``data``'s row order."""
    model.to(device).eval()
    out = [model(normalize(data.images[p].to(device), info)).float().cpu()
           for p in batch_positions(len(data), batch_size, None)]
    return torch.cat(out) if out else torch.empty(0, info.num_classes)


def _observe(model: nn.Module, parts: PartitionedData, test: ImageSplit, ctx: UnlearnContext):
    """(confidences on F (N,), {forget,retain,test}_acc) of one model copy."""
    logits = predict_logits(model, parts.forget, ctx.info, ctx.device)
    accs = {"forget_acc": accuracy(logits, parts.forget.labels)}
    for name, split in (("retain", parts.retain), ("test", test)):
        accs[f"{name}_acc"] = accuracy(predict_proba(model, split, ctx.info, ctx.device), split.labels)
    return logit_scaled_confidence(logits, parts.forget.labels), accs


def forgetting_quality(original: nn.Module, parts: PartitionedData, test: ImageSplit, strategy: str,
                       plan: UnlearnPlan, ctx: UnlearnContext, copies: int, null_baseline: bool = True
                       ) -> ForgettingQualityResult:
    """Unlearn ``original`` ``copies`` times and retrain ``copies`` times, then score F (docs/methods.md §6).

    With ``null_baseline``, ``copies`` more retrained models (seeds disjoint from the
    first) are scored against the retrained ones the same way: both samples
    come from one distribution, so this is what a perfect unlearner scores
    with this few copies (the score's small-sample bias; it shrinks as copies
    grow). Copy k's seed derives from ``ctx.seed``, its side and k alone, so
    copy k is the same model whatever ``copies`` is (docs/architecture.md rule 5).
    """
    if copies < MIN_COPIES:
        raise ValueError(f"copies must be >= {MIN_COPIES}, got {copies}")
    retrain = METHODS.get("retrain")
    retrained = lambda c: retrain.run(None, parts.forget, parts.retain, retrain.config({}), c)  # noqa: E731
    runs = {
        "unlearned": lambda c: run_strategy(strategy, copy.deepcopy(original), parts.subsets, parts.retain, plan, c)[0],
        "retrained": retrained,
    }
    if null_baseline:
        runs["retrained_null"] = retrained  # the seed's side name keeps these disjoint from "retrained"
    confs: dict[str, list[np.ndarray]] = {side: [] for side in runs}
    accs: dict[str, list[dict]] = {side: [] for side in runs}
    seconds = {side: 0.0 for side in runs}
    for side, run in runs.items():
        for k in range(copies):
            start = time.perf_counter()
            model = run(replace(ctx, seed=derive_seed(ctx.seed, f"lira/{side}", k)))
            seconds[side] += (time.perf_counter() - start) / copies
            c, a = _observe(model, parts, test, ctx)
            confs[side].append(c)
            accs[side].append(a)

    mean_acc = {f"{side}_{key}": float(np.mean([a[key] for a in accs[side]]))
                for side in ("unlearned", "retrained") for key in ("forget_acc", "retain_acc", "test_acc")}
    u, r = np.stack(confs["unlearned"]), np.stack(confs["retrained"])  # (copies, N)
    score, eps, points = forget_score(u, r)
    final = final_score(score, mean_acc["unlearned_retain_acc"], mean_acc["retrained_retain_acc"],
                        mean_acc["unlearned_test_acc"], mean_acc["retrained_test_acc"])
    null_score = forget_score(np.stack(confs["retrained_null"]), r)[0] if null_baseline else float("nan")
    return ForgettingQualityResult(parts.forget.example_ids.numpy(), u, r, eps, points, score, final, mean_acc,
                                   {k: seconds[k] for k in ("unlearned", "retrained")}, null_score)
