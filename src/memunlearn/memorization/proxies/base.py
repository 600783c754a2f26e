"""The proxy registry ``PROXIES`` (docs/methods.md §2): cheap stand-ins for mem(i), and what they read.

Each proxy returns its raw value per training example and declares its
direction; the pipeline stores ``score = direction * raw`` so that every
proxy score means "higher = more memorized", with the raw value beside it.

Proxies differ in what they read and so in what they cost:
``learning_events`` and ``curvature`` are recorded while the original model
trains (no second training run); ``final_pass`` proxies share one forward
pass of the trained model over D; ``own`` proxies (holdout_retrain) pay
for their own computation.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from ...config import check_fraction, check_positive
from ...data.splits import DatasetInfo, ImageSplit
from ...registry import Registry

COST_SOURCES = ("learning_events", "curvature", "curvature_rademacher", "final_pass", "own")


@dataclass(frozen=True)
class ProxyConfig:
    """Params section ``proxies``."""

    names: tuple[str, ...] = ()  # empty = every registered proxy
    top_n: int = 100  # N of precision@N against exact scores
    holdout_lr: float = 0.1  # holdout_retrain (reference: lr 0.1, <= 30 epochs, patience 4)
    holdout_max_epochs: int = 30
    holdout_patience: int = 4
    holdout_batch_size: int = 128
    holdout_fraction: float = 1.0  # of the validation split used as held-out data
    holdout_weight_decay: float = 5e-4  # holdout_retrain fine-tuning (reference: 5e-4)
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        for name in self.names:
            PROXIES.get(name)
        for name in ("top_n", "holdout_lr", "holdout_max_epochs", "holdout_patience", "holdout_batch_size"):
            check_positive(getattr(self, name), f"proxies.{name}")
        check_fraction(self.holdout_fraction, "proxies.holdout_fraction", open_low=True)
        if not self.holdout_weight_decay >= 0:
            raise ValueError(f"proxies.holdout_weight_decay must be >= 0, got {self.holdout_weight_decay}")


@dataclass(frozen=True)
class ProxyInputs:
    """What proxies read. Training records come from the train stage; the rest from its model."""

    train: ImageSplit  # D, with the labels the model was trained on
    heldout: ImageSplit  # data the model never saw (holdout_retrain): the validation split
    info: DatasetInfo
    model: nn.Module  # the trained original model
    device: torch.device
    config: ProxyConfig
    learning_events: pd.DataFrame | None = None  # training/events.py, one row per example_id
    curvature: pd.DataFrame | None = None  # training/curvature.py, one row per example_id

    @property
    def example_ids(self) -> np.ndarray:
        return self.train.example_ids.numpy()

    @property
    def labels(self) -> np.ndarray:
        return self.train.labels.numpy()

    @cached_property
    def final_probs(self) -> np.ndarray:
        """(N, C) eval-mode softmax of the trained model on D: one shared forward pass."""
        from ...training.loop import predict_proba

        return predict_proba(self.model, self.train, self.info, self.device).numpy()

    @property
    def final_true_prob(self) -> np.ndarray:
        """(N,) final eval-mode p_y."""
        return self.final_probs[np.arange(len(self.labels)), self.labels]

    def learning_event(self, column: str) -> np.ndarray:
        return self.record_column(self.learning_events, column, "the train stage always records them;")

    def record_column(self, table: pd.DataFrame | None, column: str, produced_by: str) -> np.ndarray:
        """A training-time record aligned to D's rows; a clear error if it was not recorded."""
        if table is None or column not in table.columns:
            raise ValueError(f"no {column!r} records from training; {produced_by} and rerun `dvc repro train`")
        table = table.set_index("example_id")
        missing = np.setdiff1d(self.example_ids, table.index.to_numpy())
        if len(missing):
            raise ValueError(f"{column} records lack {len(missing)} training examples; rerun `dvc repro train`")
        return table.loc[self.example_ids, column].to_numpy()


@dataclass(frozen=True)
class Proxy:
    name: str
    direction: int  # +1: higher raw = more memorized; -1: higher raw = less
    cost_source: str  # one of COST_SOURCES
    compute: Callable[[ProxyInputs], np.ndarray]  # raw values, (N,)
    summary: str


PROXIES: Registry[Proxy] = Registry("proxy")


def register_proxy(name: str, direction: int, cost_source: str, summary: str):
    if cost_source not in COST_SOURCES:
        raise ValueError(f"proxy {name!r}: cost_source must be one of {COST_SOURCES}")

    def decorator(fn: Callable[[ProxyInputs], np.ndarray]):
        PROXIES.register(name, Proxy(name, direction, cost_source, fn, summary))
        return fn

    return decorator
