"""Score models on F, R, T and the RUM subsets; compare them with the retrain oracle (docs/methods.md §6)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..config import check_choice
from ..data.splits import DatasetInfo, ImageSplit
from ..io import atomic_write, require
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


@dataclass(frozen=True)
class ModelOutputs:
    """A model's class probabilities on F, R, T and each RUM subset: everything scoring reads, so a grid cell
    keeps them and a changed evaluation setting re-scores without unlearning again."""

    probs: Mapping[str, torch.Tensor]  # "forget", "retain", "test", "subset_<name>" -> (N, C) float32

    def save(self, path: Path) -> None:
        atomic_write(path, lambda f: np.savez(f, **{name: p.numpy() for name, p in self.probs.items()}))

    @classmethod
    def load(cls, path: Path, produced_by: str) -> "ModelOutputs":
        with np.load(require(path, produced_by)) as arrays:
            return cls({name: torch.from_numpy(arrays[name]) for name in arrays.files})


def model_outputs(model: nn.Module, forget: ImageSplit, retain: ImageSplit, test: ImageSplit,
                  subsets: Mapping[str, ImageSplit], info: DatasetInfo, device: torch.device) -> ModelOutputs:
    splits = {"forget": forget, "retain": retain, "test": test, **{f"subset_{s}": x for s, x in subsets.items()}}
    return ModelOutputs({name: predict_proba(model, split, info, device) for name, split in splits.items()})


def output_metrics(outputs: ModelOutputs, forget: ImageSplit, retain: ImageSplit, test: ImageSplit,
                   subsets: Mapping[str, ImageSplit], cfg: EvaluateConfig) -> dict[str, float]:
    """FA/RA/TA, forget accuracy per RUM subset, and SVC MIA efficacy, from a model's outputs."""
    probs = outputs.probs
    out = {f"{name}_acc": accuracy(probs[name], split.labels)
           for name, split in (("forget", forget), ("retain", retain), ("test", test))}
    for subset, split in subsets.items():
        out[f"forget_acc_{subset}"] = accuracy(probs[f"subset_{subset}"], split.labels)
    as_np = lambda name, split: (probs[name].numpy(), split.labels.numpy())  # noqa: E731
    out["mia"] = svc_mia(as_np("retain", retain), as_np("test", test), as_np("forget", forget),
                         cfg.mia_feature, cfg.seed, cfg.mia_max_per_class)
    return out


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
    return output_metrics(model_outputs(model, forget, retain, test, subsets, info, device), forget, retain, test,
                          subsets, cfg)


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
