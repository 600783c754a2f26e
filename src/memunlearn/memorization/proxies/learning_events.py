"""Learning-event proxies (METHODS.md §2.1): running means recorded in training.

The four share one recorder (training/events.py), so this module only maps
each proxy to its column, aligned to the input's example order.
"""
from __future__ import annotations

import numpy as np

from . import ProxyInputs, register_proxy


def _column(inputs: ProxyInputs, column: str) -> np.ndarray:
    events = inputs.learning_events.set_index("example_id")
    missing = np.setdiff1d(inputs.example_ids, events.index.to_numpy())
    if len(missing):
        raise ValueError(f"learning events lack {len(missing)} training examples; rerun `dvc repro train`")
    return events.loc[inputs.example_ids, column].to_numpy()


@register_proxy("confidence", -1, "mean train-mode p_y over all steps; high = learned early = less memorized")
def confidence(inputs: ProxyInputs) -> np.ndarray:
    return _column(inputs, "confidence")


@register_proxy("max_conf", -1, "mean train-mode max_c p_c over all steps")
def max_conf(inputs: ProxyInputs) -> np.ndarray:
    return _column(inputs, "max_conf")


@register_proxy("entropy", +1, "mean train-mode predictive entropy; high = uncertain = more memorized")
def entropy(inputs: ProxyInputs) -> np.ndarray:
    return _column(inputs, "entropy")


@register_proxy("binary_acc", -1, "fraction of steps at which the example was classified correctly")
def binary_acc(inputs: ProxyInputs) -> np.ndarray:
    return _column(inputs, "binary_acc")
