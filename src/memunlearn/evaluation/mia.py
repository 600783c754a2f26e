"""SVC membership-inference attack, SalUn/RUM style (docs/methods.md §6).

Fit ``SVC(C=3, kernel='rbf', gamma='auto')`` on a per-example feature of
retain examples (members, label 1) vs test examples (non-members, label 0),
balanced by subsampling; apply it to F. MIA efficacy = fraction of F
predicted as non-members (higher = F looks more unseen).

Reference: OPTML-Group/Unlearn-Saliency ``evaluation/SVC_MIA.py`` (``SVC_fit_predict``
and its correctness / confidence / entropy / probability features); golden values
computed with it: tests/test_golden.py.

Modified entropy follows Song & Mittal (2021), "Systematic Evaluation of Privacy
Risks of Machine Learning Models", not the reference's copy (``m_entropy``), which
is buggy: ``modified_probs[:, labels]`` indexes columns by the whole label vector
instead of each row's own label, and it takes log p where the formula has
log(1 − p) for the other classes.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..registry import Registry

# (probs (N, C), labels (N,)) -> features (N, D)
MiaFeature = Callable[[np.ndarray, np.ndarray], np.ndarray]
MIA_FEATURES: Registry[MiaFeature] = Registry("MIA feature")


def _true_prob(p, y):
    return p[np.arange(len(y)), y]


def _xlogy_safe(p):
    return np.log(np.clip(p, 1e-12, None))


MIA_FEATURES.register("true_prob", lambda p, y: _true_prob(p, y)[:, None])
MIA_FEATURES.register("correctness", lambda p, y: (p.argmax(1) == y).astype(np.float64)[:, None])
MIA_FEATURES.register("entropy", lambda p, y: -(p * _xlogy_safe(p)).sum(1, keepdims=True))
MIA_FEATURES.register("prob_vector", lambda p, y: p)


@MIA_FEATURES.register("modified_entropy")
def modified_entropy(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Song & Mittal (2021): -(1-p_y) log p_y - sum_{c != y} p_c log(1 - p_c)."""
    py = _true_prob(p, y)
    others = p * _xlogy_safe(1 - p)  # (N, C)
    others[np.arange(len(y)), y] = 0.0
    return (-(1 - py) * _xlogy_safe(py) - others.sum(1))[:, None]


def svc_mia(
    retain: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    forget: tuple[np.ndarray, np.ndarray],
    feature: str = "true_prob",
    seed: int = 0,
    max_per_class: int = 5000,
) -> float:
    """MIA efficacy on F; each argument is (probs (N, C), labels (N,))."""
    featurize = MIA_FEATURES.get(feature)
    rng = np.random.default_rng(seed)
    n = min(len(retain[1]), len(test[1]), max_per_class)
    if n == 0 or len(forget[1]) == 0:
        return float("nan")
    members = featurize(*retain)[rng.choice(len(retain[1]), n, replace=False)]
    nonmembers = featurize(*test)[rng.choice(len(test[1]), n, replace=False)]
    from sklearn.svm import SVC  # here: importing sklearn costs every stage that only reads outputs 1.4 s

    attack = SVC(C=3, kernel="rbf", gamma="auto")
    attack.fit(np.concatenate([members, nonmembers]), np.r_[np.ones(n), np.zeros(n)])
    return float((attack.predict(featurize(*forget)) == 0).mean())
