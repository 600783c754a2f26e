"""LiRA-style forgetting quality of the NeurIPS 2023 unlearning challenge (docs/methods.md §6).

Per forget example, an attacker sees the example's logit-scaled confidence
``log p_y − log(1 − p_y)`` under many unlearned and many retrained models and
tries to tell the two apart with a threshold rule; its best FPR/FNR pair is
turned into an ε at δ = 1e-5, ε into points ``2^(−bucket)``, and the points
are averaged over F. The final score multiplies in the utility ratios:
``F_score · (RA_u / RA_r) · (TA_u / TA_r)``, accuracies averaged over copies.
These are the pure score functions; the driver that unlearns and retrains
the copies is ``experiments/forgetting_quality.py``.

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

import math

import numpy as np
import torch

DELTA = 1e-5
EPSILON_CAP = 50.0
THRESHOLDS_PER_UNIT = 100
INTERVAL_BUFFER = 2.0
BUCKET_WIDTH = 0.5
PEAKY_RATIO = 0.01  # a sample's range below 1% of the other's: the cap (reference `_get_epsilons`)
MIN_COPIES = 3  # ceil(ln(M − 1)) = 0 for M = 2: no bucket, every score 0


def logit_scaled_confidence(logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> np.ndarray:
    """``log p_y − log(1 − p_y) = z_y − logsumexp_{c≠y} z_c`` per row: logits (N, C), labels (N,) -> (N,) float64."""
    z = torch.as_tensor(logits).double()
    y = torch.as_tensor(labels).long().view(-1, 1)
    others = z.scatter(1, y, float("-inf"))  # drop the true class from the log-sum-exp
    return (z.gather(1, y).squeeze(1) - torch.logsumexp(others, dim=1)).numpy()


def logit_scaled_sequence_confidence(mean_nll: np.ndarray) -> np.ndarray:
    """A sequence's ``log p − log(1 − p)`` with p = exp(−mean next-token NLL), the geometric-mean token
    probability (a language model's counterpart of p_y): (N,) -> (N,) float64, as ``−l − log(−expm1(−l))``,
    exact where 1 − p rounds to 0 or 1."""
    loss = np.maximum(np.asarray(mean_nll, dtype=np.float64), np.finfo(np.float64).tiny)
    return -loss - np.log(-np.expm1(-loss))


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
