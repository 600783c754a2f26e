"""Memorization scores: exact (leave-subset-out) and cheap proxies."""
from .agreement import agreement, planted_auroc
from .engine import SubsetJob, SubsetModelOutputs, run_subset_job, subset_mask
from .exact import ExactConfig, Execution, SubsetRuns, memorization_scores, top_influences, train_subset_models
from .store import SubsetModelStore, dataset_fingerprint, store_key
from .proxies import PROXIES, ProxyConfig, ProxyInputs, compute_proxies, proxy_costs

__all__ = [
    "agreement", "planted_auroc", "ExactConfig", "Execution", "SubsetJob", "SubsetModelOutputs", "run_subset_job", "top_influences", "SubsetRuns", "SubsetModelStore",
    "dataset_fingerprint", "store_key", "memorization_scores", "subset_mask",
    "train_subset_models", "PROXIES", "ProxyConfig", "ProxyInputs", "compute_proxies", "proxy_costs",
]
