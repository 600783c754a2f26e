"""Training examples ranked by exact memorization, with their labels and planted-noise flags.

What ``memunlearn top`` prints and the memorized-examples figure draws; not
imported by the package's ``__init__``, so no scoring stage depends on it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

RANK_SCORES = ("mem_prob", "mem")  # exact scores a ranking may use (docs/methods.md §1)


def ranked_examples(scores: pd.DataFrame, example_ids, labels, planted: pd.DataFrame,
                    score: str = "mem_prob") -> pd.DataFrame:
    """Every scored training example (NaN: never held out, or never in, of a subset model), most memorized
    first: ``example_id``, ``label`` (as trained on),
    ``score``, its standard error ``score_se``, ``planted_noise`` and ``clean_label`` (the label before the
    planted flip, -1 where none was planted).

    scores: the memorize stage's table; example_ids, labels: the train split's (N,);
    planted: ``label_noise.csv`` (example_id, clean_label, noisy_label).
    """
    if score not in RANK_SCORES:
        raise ValueError(f"unknown exact score {score!r}; choose one of: {', '.join(RANK_SCORES)}")
    table = pd.DataFrame({"example_id": np.asarray(example_ids), "label": np.asarray(labels)})
    table = table.merge(scores[["example_id", score, f"{score}_se"]].rename(
        columns={score: "score", f"{score}_se": "score_se"}), on="example_id")
    clean = planted.set_index("example_id")["clean_label"]
    table["planted_noise"] = table["example_id"].isin(clean.index)
    table["clean_label"] = table["example_id"].map(clean).fillna(-1).astype(np.int64)
    table = table.dropna(subset=["score"])
    return table.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
