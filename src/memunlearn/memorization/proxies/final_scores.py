"""End-of-training single-model baselines (METHODS.md §2.4, ours)."""
from __future__ import annotations

import numpy as np

from . import ProxyInputs, register_proxy


def _true_prob(inputs: ProxyInputs) -> np.ndarray:
    return inputs.final_probs[np.arange(len(inputs.labels)), inputs.labels]  # (N,)


@register_proxy("final_confidence", -1, "final_pass", "final eval-mode p_y")
def final_confidence(inputs: ProxyInputs) -> np.ndarray:
    return _true_prob(inputs)


@register_proxy("final_loss", +1, "final_pass", "final eval-mode cross-entropy -log p_y")
def final_loss(inputs: ProxyInputs) -> np.ndarray:
    return -np.log(np.clip(_true_prob(inputs), 1e-12, None))


@register_proxy("final_margin", -1, "final_pass", "final p_y - max_{c != y} p_c")
def final_margin(inputs: ProxyInputs) -> np.ndarray:
    others = inputs.final_probs.copy()
    others[np.arange(len(inputs.labels)), inputs.labels] = -np.inf
    return _true_prob(inputs) - others.max(1)
