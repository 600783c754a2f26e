"""``binary_acc``: a learning-event proxy (docs/methods.md §2.1), recorded during training (training/events.py)."""
from __future__ import annotations

import numpy as np

from .base import ProxyInputs, register_proxy


@register_proxy("binary_acc", -1, "learning_events", "fraction of steps at which the example was classified correctly")
def binary_acc(inputs: ProxyInputs) -> np.ndarray:
    return inputs.learning_event("binary_acc")
