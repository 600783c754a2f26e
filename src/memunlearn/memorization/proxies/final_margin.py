"""``final_margin``: an end-of-training single-model baseline (docs/methods.md §2.4, ours)."""
from __future__ import annotations

import numpy as np

from .base import ProxyInputs, register_proxy


@register_proxy("final_margin", -1, "final_pass", "final p_y - max_{c != y} p_c")
def final_margin(inputs: ProxyInputs) -> np.ndarray:
    others = inputs.final_probs.copy()  # (N, C)
    others[np.arange(len(inputs.labels)), inputs.labels] = -np.inf
    return inputs.final_true_prob - others.max(1)
