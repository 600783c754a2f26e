"""``final_confidence``: an end-of-training single-model baseline (docs/methods.md §2.4, ours)."""
from __future__ import annotations

import numpy as np

from .base import ProxyInputs, register_proxy


@register_proxy("final_confidence", -1, "final_pass", "final eval-mode p_y")
def final_confidence(inputs: ProxyInputs) -> np.ndarray:
    return inputs.final_true_prob
