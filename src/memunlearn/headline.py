"""The run's headline numbers, flat in one small file (metrics/summary.json) for `dvc exp show` and
`dvc metrics diff`: how well the hand-set experiment unlearned (docs/methods.md §6) and how trustworthy the
exact memorization scores behind it are (docs/methods.md §1)."""
from __future__ import annotations

from typing import Any, Mapping

UNLEARNED = ("tow", "tow_mia", "forget_acc", "retain_acc", "test_acc")  # the unlearned model's, from evaluate
OPTIONAL = ("forget_exposure", "validation_ppl")  # the unlearned model's, where evaluate wrote them (a text run)
MEMORIZATION = {  # headline name -> metrics/memorize.json key
    "planted_noise_auroc": "planted_noise_auroc",  # the 0/1 estimator (exact) finds the planted label noise
    "planted_noise_auroc_prob": "planted_noise_auroc_prob",  # the true-class-probability one (exact_prob)
    "score_stability": "spearman_split_halves",  # Spearman between the scores of two disjoint halves of the K models
    "num_models": "num_models",
}


def headline(evaluate: Mapping[str, Any], memorize: Mapping[str, Any]) -> dict[str, Any]:
    """The headline from the evaluate and memorize stages' metrics (metrics/evaluate.json, metrics/memorize.json)."""
    unlearned = evaluate["unlearned"]
    return {**{key: unlearned[key] for key in UNLEARNED},
            **{key: unlearned[key] for key in OPTIONAL if key in unlearned},
            **{name: memorize[key] for name, key in MEMORIZATION.items()}}
