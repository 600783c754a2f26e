"""``l1_sparse``: fine-tune on R with a decaying L1 penalty (Jia et al.'s ℓ1-sparse unlearning; docs/methods.md §5).

loss = CE_R + γ·(1 − e/E)·‖θ‖₁ over every parameter, with the epoch e counted
0..E−1 as in the official code (OPTML-Group/Unlearn-Saliency ``FT_l1``:
``current_alpha = alpha * (1 - epoch / unlearn_epochs)``): the penalty falls
linearly from γ in the first epoch to γ/E in the last, a mean of
γ·(E+1)/(2E) (0.55γ at E = 10).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import ConfigError
from .base import register_method
from .common import OptimConfig, batches, ce, optimize, seeded


@dataclass(frozen=True)
class L1SparseConfig(OptimConfig):
    lr: float = 0.01
    epochs: int = 10
    gamma: float = 5e-4  # γ, the L1 weight before its decay

    def validate(self) -> None:
        super().validate()
        if not self.gamma >= 0:
            raise ConfigError(f"methods.l1_sparse.gamma must be >= 0, got {self.gamma}")


def l1_weight(gamma: float, epoch: int, epochs: int) -> float:
    """γ·(1 − e/E) for epoch e in 0..E−1 (official FT_l1): γ in the first epoch, γ/E in the last."""
    if not 0 <= epoch < epochs:
        raise ValueError(f"epoch must lie in 0..{epochs - 1}, got {epoch}")
    return gamma * (1 - epoch / epochs)


def l1_norm(model: nn.Module) -> torch.Tensor:
    return sum(p.abs().sum() for p in model.parameters())


@register_method("l1_sparse", L1SparseConfig, "CE_R + gamma*(1-e/E)*||theta||_1 (lr 0.01, 10 epochs, gamma 5e-4)")
def l1_sparse(model, forget, retain, cfg: L1SparseConfig, ctx):
    gen = seeded(ctx.seed, "l1_sparse")

    def epoch(e):  # items: (batch, this epoch's L1 weight); e counts from 0 in optimize, as in FT_l1
        weight = l1_weight(cfg.gamma, e, cfg.epochs)
        for batch in batches(retain, ctx.info, cfg.batch_size, gen, ctx.device):
            yield batch, weight

    def loss(model, item):
        batch, weight = item
        penalty = weight * l1_norm(model) if weight > 0 else 0.0  # γ = 0: skip the O(|θ|) norm
        return ce(model, batch) + penalty

    return optimize(model, cfg, epoch, loss, ctx.device)
