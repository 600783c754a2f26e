"""Memorization proxies (docs/methods.md §2), by registry (base.py); one module per proxy beside it."""
from .base import COST_SOURCES, PROXIES, Proxy, ProxyConfig, ProxyInputs, register_proxy
from . import (  # noqa: F401  (one module per proxy; importing registers it)
    binary_acc, confidence, entropy, final_confidence, final_loss, final_margin, holdout_retrain, loss_curvature,
    max_conf,
)
from .compute import compute_proxies, final_model_proxies, proxy_costs, recorded_proxies, score_columns

__all__ = ["COST_SOURCES", "PROXIES", "Proxy", "ProxyConfig", "ProxyInputs", "compute_proxies", "final_model_proxies",
           "proxy_costs", "recorded_proxies", "register_proxy", "score_columns"]
