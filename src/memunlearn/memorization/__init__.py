"""Memorization scores: exact (leave-subset-out) and cheap proxies."""
from .agreement import agreement, planted_auroc
from .exact import ExactConfig, SubsetModelOutputs, memorization_scores, subset_mask, train_subset_models
from .proxies import PROXIES, ProxyInputs, compute_proxies

__all__ = [
    "agreement", "planted_auroc", "ExactConfig", "SubsetModelOutputs", "memorization_scores", "subset_mask",
    "train_subset_models", "PROXIES", "ProxyInputs", "compute_proxies",
]
