"""A model version's memorization scores, computed once per version and cached by content.

The pipeline's original has exact leave-subset-out scores (``mem_prob``, the memorize stage); any other version
(an unlearned one, a retrained base) gets the proxy a final model allows (``requests.proxy``: final
confidence/loss/margin or holdout retraining, docs/methods.md §2). A version's scores are keyed by its weights,
the data and the proxy, so a later request against the same version computes none, and a changed version never
reads another's.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from ..io import load_table, save_table
from ..partition import EXACT_SCORES, SUBSETS
from ..unlearning.cache import _weights_digest

EXACT = "exact_prob"


@dataclass(frozen=True)
class VersionScores:
    name: str  # exact_prob or the proxy's name
    values: pd.Series  # by example_id over D; higher = more memorized (a proxy's stored direction)
    computed: bool  # False: read from the memorize stage or the cache


def version_scores(model: nn.Module, data: Any, device, proxy: str, exact: pd.DataFrame | None,
                   cache: Path) -> VersionScores:
    """``exact`` (the memorize stage's table) when given, i.e. when ``model`` is the pipeline's original, else
    ``proxy`` of ``model`` (``data``: requests/service.py ``Data``; its modality's ``final_model_scores``) from
    ``cache`` or computed now and cached."""
    if exact is not None:
        return VersionScores(EXACT, exact.set_index("example_id")[EXACT_SCORES[EXACT]], False)
    splits = f"{data.train.fingerprint()}|{data.validation.fingerprint()}"  # D and the held-out data, by content
    key = hashlib.sha256(f"{_weights_digest(model)}|{splits}|{proxy}".encode())
    path = Path(cache) / f"{key.hexdigest()[:16]}.parquet"
    if path.exists():
        return VersionScores(proxy, load_table(path, "memunlearn forget").set_index("example_id")[proxy], False)
    values = data.modality.final_model_scores(model, data.prepared, proxy, device).rename(proxy)
    save_table(values.rename_axis("example_id").reset_index(), path)  # atomic: a killed run leaves no half table
    return VersionScores(proxy, values, True)


def plan_subsets(ids: np.ndarray, scores: pd.Series) -> dict[str, np.ndarray]:
    """The request's ids by memorization level, low/mid/high = below the lower tercile of D's scores, between,
    above the upper one (so a request of typical examples is all ``low`` and unlearned in one step; ids without
    a score go to ``mid``)."""
    lower, upper = np.nanquantile(scores.to_numpy(dtype=float), [1 / 3, 2 / 3])
    values = scores.reindex(ids).to_numpy(dtype=float)
    level = np.where(np.isnan(values), "mid", np.where(values <= lower, "low", np.where(values > upper, "high", "mid")))
    return {name: np.asarray(ids)[level == name] for name in SUBSETS}
