"""Memorization scores: exact (leave-subset-out) and cheap proxies."""
from .agreement import agreement, planted_auroc
from .exact import ExactConfig, SubsetModelOutputs, SubsetRuns, memorization_scores, subset_mask, train_subset_models
from .store import SubsetModelStore, dataset_fingerprint, store_key
from .proxies import PROXIES, ProxyConfig, ProxyInputs, compute_proxies, proxy_costs

__all__ = [
    "agreement", "planted_auroc", "ExactConfig", "SubsetModelOutputs", "SubsetRuns", "SubsetModelStore",
    "dataset_fingerprint", "store_key", "memorization_scores", "subset_mask",
    "train_subset_models", "PROXIES", "ProxyConfig", "ProxyInputs", "compute_proxies", "proxy_costs",
]
