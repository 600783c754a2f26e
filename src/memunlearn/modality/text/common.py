"""What every text stage reads: the prepared splits, tokenizer and canary table, and how MLflow sees a split."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ...data.prepare import VALIDATION_FILE
from ...data.text import TextInfo, TextSplit, load_text_split
from ...io import load_table, require
from ..base import MODALITY_KEY

META = "meta.json"
TOKENIZER = "tokenizer.json"
CANARIES = "canaries.csv"
CANARY_KEYS = ("canary_template", "canary_digits")  # in meta.json beside TextInfo: exposure enumerates them


@dataclass(frozen=True)
class PreparedRun:
    train: TextSplit  # corpus sequences, then every canary copy
    validation: TextSplit | None  # None when data.validation_fraction is 0
    test: TextSplit
    info: TextInfo
    canaries: pd.DataFrame  # example_id, canary, copies, secret, text: one row per copy
    canary_template: str
    canary_digits: int
    tokenizer_json: str

    @property
    def canary_ids(self) -> np.ndarray:
        return self.canaries["example_id"].to_numpy()

    @property
    def planted(self) -> np.ndarray:
        """The planted examples (modality/base.py ``Prepared``): every canary copy."""
        return self.canary_ids

    def labels(self) -> pd.Series:
        """Each training sequence's canary copy count (0 for corpus text), by example_id: ScoreSources.labels."""
        ids = self.train.example_ids.numpy()
        by_id = dict(zip(self.canaries["example_id"], self.canaries["copies"]))
        return pd.Series([int(by_id.get(i, 0)) for i in ids], index=pd.Index(ids, name="example_id"))


def meta_json(info: TextInfo, canary_template: str, canary_digits: int) -> dict:
    return {**info.to_json(), "canary_template": canary_template, "canary_digits": canary_digits,
            MODALITY_KEY: "text"}


def load_prepared(prepared: Path) -> PreparedRun:
    """The text run's prepared data (the prepare stage's folder)."""
    meta = json.loads(require(prepared / META, "prepare").read_text())
    extra = {k: meta.pop(k) for k in (*CANARY_KEYS, MODALITY_KEY)}
    validation = load_text_split(prepared / VALIDATION_FILE)
    return PreparedRun(load_text_split(prepared / "train.npz"), validation if len(validation) else None,
                       load_text_split(prepared / "test.npz"), TextInfo.from_json(meta),
                       load_table(prepared / CANARIES, "prepare"), extra["canary_template"],
                       int(extra["canary_digits"]), require(prepared / TOKENIZER, "prepare").read_text())


def logged(split: TextSplit, labels: pd.Series | None = None) -> SimpleNamespace:
    """A split as MLflow's dataset inputs take it (example ids and labels: the canary copy count, else 0)."""
    ids = split.example_ids.numpy()
    values = labels.reindex(ids).fillna(0).to_numpy(dtype=np.int64) if labels is not None else np.zeros_like(ids)
    return SimpleNamespace(example_ids=ids, labels=values)


def numeric(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a record (MLflow metrics)."""
    return {k: float(v) for k, v in values.items()
            if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and np.isfinite(v)}
