"""``max_conf``: a learning-event proxy (docs/methods.md §2.1), recorded during training (training/events.py)."""
from __future__ import annotations

import numpy as np

from .base import ProxyInputs, register_proxy


@register_proxy("max_conf", -1, "learning_events", "mean train-mode max_c p_c over all steps")
def max_conf(inputs: ProxyInputs) -> np.ndarray:
    return inputs.learning_event("max_conf")
