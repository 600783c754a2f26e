"""Memorization proxies (METHODS.md §2): a registry of cheap stand-ins for mem(i).

Each proxy returns its raw value per training example and declares its
direction; the pipeline stores ``score = direction * raw`` so that every
proxy score means "higher = more memorized", with the raw value beside it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ...registry import Registry


@dataclass(frozen=True)
class ProxyInputs:
    """Everything the training-time and end-of-training proxies read, keyed by row."""

    example_ids: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) training labels (noisy ones included)
    learning_events: pd.DataFrame  # one row per example_id (training/events.py)
    final_probs: np.ndarray  # (N, C) eval-mode softmax of the trained model


@dataclass(frozen=True)
class Proxy:
    name: str
    direction: int  # +1: higher raw = more memorized; -1: higher raw = less
    compute: Callable[[ProxyInputs], np.ndarray]  # raw values, (N,)
    summary: str


PROXIES: Registry[Proxy] = Registry("proxy")


def register_proxy(name: str, direction: int, summary: str):
    def decorator(fn: Callable[[ProxyInputs], np.ndarray]):
        PROXIES.register(name, Proxy(name, direction, fn, summary))
        return fn

    return decorator


from . import final_scores, learning_events  # noqa: E402,F401  (register the built-ins)


def compute_proxies(names: list[str], inputs: ProxyInputs) -> pd.DataFrame:
    """Wide table: ``example_id`` then, per proxy, ``<name>`` (score) and ``<name>__raw``."""
    table = pd.DataFrame({"example_id": inputs.example_ids})
    for name in names:
        proxy = PROXIES.get(name)
        raw = np.asarray(proxy.compute(inputs), dtype=np.float64)
        if raw.shape != inputs.example_ids.shape:
            raise RuntimeError(f"proxy {name!r} returned shape {raw.shape}, expected {inputs.example_ids.shape}")
        table[name] = proxy.direction * raw
        table[f"{name}__raw"] = raw
    return table


__all__ = ["PROXIES", "Proxy", "ProxyConfig", "ProxyInputs", "compute_proxies", "register_proxy"]


@dataclass(frozen=True)
class ProxyConfig:
    names: tuple[str, ...] = ()  # empty = every registered proxy
    top_n: int = 100  # N of precision@N against exact scores
    device: str = "auto"

    def validate(self) -> None:
        for name in self.names:
            PROXIES.get(name)
        if self.top_n < 1:
            raise ValueError(f"proxies.top_n must be >= 1, got {self.top_n}")
