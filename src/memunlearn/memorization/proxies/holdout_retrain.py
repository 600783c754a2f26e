"""Held-out retraining proxy (docs/methods.md §2.2).

Copy the trained model, fine-tune the copy on held-out data only (the
validation split; SGD momentum 0.9, weight decay ``holdout_weight_decay``,
5e-4 as in the reference), and score
each training example by the symmetric KL between the original (p) and
fine-tuned (q) softmax: 1/2 [KL(p||q) + KL(q||p)] = 1/2 sum_c (p_c - q_c)(log p_c - log q_c).
Examples the model only fits by memorizing move the most once it is pulled
towards what the held-out data supports. Higher = more memorized.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from ...seeding import generator
from ...training.loop import normalized_batches, predict_proba, sgd
from .base import ProxyInputs, register_proxy


def finetune_until_plateau(model, data, info, config, device) -> int:
    """SGD on ``data`` until the epoch loss has not improved for ``patience`` epochs; returns epochs run."""
    optimizer = sgd(model, config.holdout_lr, momentum=0.9, weight_decay=config.holdout_weight_decay)
    gen = generator(config.seed, "proxies/holdout_order")
    best, stale = float("inf"), 0
    model.to(device).train()
    for epoch in range(config.holdout_max_epochs):
        total = 0.0
        for _, x, y in normalized_batches(data, info, config.holdout_batch_size, device, gen):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
        if total < best - 1e-6:
            best, stale = total, 0
        else:
            stale += 1
            if stale >= config.holdout_patience:
                return epoch + 1
    return config.holdout_max_epochs


def symmetric_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise 1/2 [KL(p||q) + KL(q||p)] of (N, C) probability arrays."""
    log_p, log_q = np.log(np.clip(p, 1e-12, None)), np.log(np.clip(q, 1e-12, None))
    return 0.5 * ((p - q) * (log_p - log_q)).sum(1)


@register_proxy("holdout_retrain", +1, "own", "symmetric KL after fine-tuning a copy on held-out data")
def holdout_retrain(inputs: ProxyInputs) -> np.ndarray:
    config = inputs.config
    heldout = inputs.heldout
    if config.holdout_fraction < 1:
        keep = torch.randperm(len(heldout), generator=generator(config.seed, "proxies/holdout_subset"))
        heldout = heldout.take(keep[: max(1, int(config.holdout_fraction * len(heldout)))])
    p = predict_proba(inputs.model, inputs.train, inputs.info, inputs.device).numpy()  # (N, C)
    tuned = copy.deepcopy(inputs.model)
    finetune_until_plateau(tuned, heldout, inputs.info, config, inputs.device)
    q = predict_proba(tuned, inputs.train, inputs.info, inputs.device).numpy()  # (N, C)
    return symmetric_kl(p, q)
