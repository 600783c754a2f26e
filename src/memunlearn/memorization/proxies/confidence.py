"""``confidence``: a learning-event proxy (docs/methods.md §2.1), recorded during training (training/events.py)."""
from __future__ import annotations

import numpy as np

from .base import ProxyInputs, register_proxy


@register_proxy("confidence", -1, "learning_events", "mean train-mode p_y over all steps; high = learned early = less memorized")
def confidence(inputs: ProxyInputs) -> np.ndarray:
    return inputs.learning_event("confidence")
