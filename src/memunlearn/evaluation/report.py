"""Score models on F, R, T and the RUM subsets; compare them with the retrain oracle (docs/methods.md §6)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..config import check_choice
from ..data.splits import DatasetInfo, ImageSplit
from ..training.loop import accuracy, predict_proba
from .mia import MIA_FEATURES, svc_mia
from .tow import tow, tow_mia


@dataclass(frozen=True)
class EvaluateConfig:
    mia_feature: str = "true_prob"
    mia_max_per_class: int = 5000
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        check_choice(self.mia_feature, MIA_FEATURES.names(), "evaluate.mia_feature")


def model_metrics(
    model: nn.Module,
    forget: ImageSplit,
    retain: ImageSplit,
    test: ImageSplit,
    subsets: Mapping[str, ImageSplit],
    info: DatasetInfo,
    cfg: EvaluateConfig,
    device: torch.device,
) -> dict[str, float]:
    """FA/RA/TA, forget accuracy per RUM subset, and SVC MIA efficacy."""
    probs = {name: predict_proba(model, split, info, device) for name, split in
             (("forget", forget), ("retain", retain), ("test", test))}
    out = {f"{name}_acc": accuracy(probs[name], split.labels)
           for name, split in (("forget", forget), ("retain", retain), ("test", test))}
    for subset, split in subsets.items():
        out[f"forget_acc_{subset}"] = accuracy(predict_proba(model, split, info, device), split.labels)
    as_np = lambda name, split: (probs[name].numpy(), split.labels.numpy())  # noqa: E731
    out["mia"] = svc_mia(as_np("retain", retain), as_np("test", test), as_np("forget", forget),
                         cfg.mia_feature, cfg.seed, cfg.mia_max_per_class)
    return out


def compare(rows: Mapping[str, Mapping[str, float]], oracle_key: str = "retrain") -> pd.DataFrame:
    """One row per model with ToW and ToW-MIA against ``rows[oracle_key]``."""
    oracle = rows[oracle_key]
    table = pd.DataFrame([{"model": name, **m} for name, m in rows.items()])
    table["tow"] = [tow(m, oracle) for m in rows.values()]
    table["tow_mia"] = [tow_mia(m, oracle) if not np.isnan(m["mia"]) else np.nan for m in rows.values()]
    return table


def score_against_oracle(
    models: Mapping[str, nn.Module],
    forget: ImageSplit,
    retain: ImageSplit,
    test: ImageSplit,
    subsets: Mapping[str, ImageSplit],
    info: DatasetInfo,
    cfg: EvaluateConfig,
    device: torch.device,
    oracle: str = "retrain",
) -> pd.DataFrame:
    """``model_metrics`` of each model (the oracle among them, named ``oracle``), one row each in ``models``'
    order, with ToW and ToW-MIA against the oracle."""
    if oracle not in models:
        raise ValueError(f"the oracle {oracle!r} is not among the models {list(models)}")
    rows = {name: model_metrics(model, forget, retain, test, subsets, info, cfg, device)
            for name, model in models.items()}
    return compare(rows, oracle_key=oracle)
