"""Memorization scores: exact (leave-subset-out) and cheap proxies."""
from .agreement import agreement, planted_auroc
from .exact import ExactConfig, SubsetModelOutputs, memorization_scores, subset_mask, train_subset_models
from .proxies import PROXIES, ProxyConfig, ProxyInputs, compute_proxies, proxy_costs

__all__ = [
    "agreement", "planted_auroc", "ExactConfig", "SubsetModelOutputs", "memorization_scores", "subset_mask",
    "train_subset_models", "PROXIES", "ProxyConfig", "ProxyInputs", "compute_proxies", "proxy_costs",
]
