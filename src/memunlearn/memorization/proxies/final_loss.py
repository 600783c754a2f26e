"""``final_loss``: an end-of-training single-model baseline (docs/methods.md §2.4, ours)."""
from __future__ import annotations

import numpy as np

from .base import ProxyInputs, register_proxy


@register_proxy("final_loss", +1, "final_pass", "final eval-mode cross-entropy -log p_y")
def final_loss(inputs: ProxyInputs) -> np.ndarray:
    return -np.log(np.clip(inputs.final_true_prob, 1e-12, None))
