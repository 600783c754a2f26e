"""``entropy``: a learning-event proxy (docs/methods.md §2.1), recorded during training (training/events.py)."""
from __future__ import annotations

import numpy as np

from .base import ProxyInputs, register_proxy


@register_proxy("entropy", +1, "learning_events", "mean train-mode predictive entropy -sum_c p_c log p_c; high = more memorized")
def entropy(inputs: ProxyInputs) -> np.ndarray:
    return inputs.learning_event("entropy")
