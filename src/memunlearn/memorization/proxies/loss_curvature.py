"""Loss-curvature proxies (Garg et al.; docs/methods.md §2.3): recorded once per epoch in training.

One proxy, two estimators (training/curvature.py), each its own registry name
so that the proxy study reports both side by side:

- ``loss_curvature``: the RUM code's sign-gradient direction, h = 0.01, one draw;
- ``loss_curvature_rademacher``: Garg et al.'s estimator, Rademacher directions,
  h = 1e-3, mean over 10 draws.

The reference code computes curvature and never uses it; here it is first-class.
"""
from __future__ import annotations

import numpy as np

from ...training.curvature import ESTIMATOR_COLUMNS
from .base import ProxyInputs, register_proxy


@register_proxy("loss_curvature", +1, "curvature",
                "mean over epochs of input-space loss curvature, sign-gradient direction (RUM code)")
def loss_curvature(inputs: ProxyInputs) -> np.ndarray:
    return inputs.record_column(inputs.curvature, ESTIMATOR_COLUMNS["sign_gradient"],
                                "set train_records.curvature: true with sign_gradient in curvature_estimators")


@register_proxy("loss_curvature_rademacher", +1, "curvature_rademacher",
                "mean over epochs of input-space loss curvature, Rademacher draws (Garg et al.)")
def loss_curvature_rademacher(inputs: ProxyInputs) -> np.ndarray:
    return inputs.record_column(inputs.curvature, ESTIMATOR_COLUMNS["rademacher"],
                                "set train_records.curvature: true with rademacher in curvature_estimators")
