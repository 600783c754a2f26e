"""Loss-curvature proxy (Garg et al.; METHODS.md §2.3): recorded once per epoch in training.

The reference code computes it and never uses it; here it is first-class.
"""
from __future__ import annotations

import numpy as np

from . import ProxyInputs, register_proxy


@register_proxy("loss_curvature", +1, "curvature", "mean over epochs of input-space loss curvature")
def loss_curvature(inputs: ProxyInputs) -> np.ndarray:
    return inputs.record_column(inputs.curvature, "loss_curvature", "set train_records.curvature: true")
