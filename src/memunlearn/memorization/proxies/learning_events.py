"""Learning-event proxies (METHODS.md §2.1): running means recorded in training.

The four share one recorder (training/events.py), so this module only maps
each proxy to its column, aligned to D's example order.
"""
from __future__ import annotations

import numpy as np

from . import ProxyInputs, register_proxy


def _column(inputs: ProxyInputs, column: str) -> np.ndarray:
    return inputs.record_column(inputs.learning_events, column, "the train stage always records them;")


@register_proxy("confidence", -1, "learning_events", "mean train-mode p_y over all steps; high = less memorized")
def confidence(inputs: ProxyInputs) -> np.ndarray:
    return _column(inputs, "confidence")


@register_proxy("max_conf", -1, "learning_events", "mean train-mode max_c p_c over all steps")
def max_conf(inputs: ProxyInputs) -> np.ndarray:
    return _column(inputs, "max_conf")


@register_proxy("entropy", +1, "learning_events", "mean train-mode predictive entropy; high = more memorized")
def entropy(inputs: ProxyInputs) -> np.ndarray:
    return _column(inputs, "entropy")


@register_proxy("binary_acc", -1, "learning_events", "fraction of steps at which the example was classified right")
def binary_acc(inputs: ProxyInputs) -> np.ndarray:
    return _column(inputs, "binary_acc")
