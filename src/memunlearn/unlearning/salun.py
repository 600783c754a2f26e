"""``salun``: SalUn, random-label unlearning restricted to the salient weights (docs/methods.md §5).

1. Saliency: g = ∇_θ CE_F at the original model (eval mode, as the official
   ``generate_mask.py``), one global ranking of |g| over every parameter
   tensor; the mask keeps the top ``threshold`` fraction, the LARGEST
   gradients (``saliency_mask``).
2. ``random_label`` training on F ∪ R with each gradient multiplied by the
   mask before the optimizer step (official ``RL`` with ``mask``), and, as the
   official code does after every step, the weights outside the mask restored
   and their momentum cleared: SGD's weight decay and momentum would otherwise
   still shrink them (about 4% over the default run). Weights outside the mask
   are therefore bit-identical after unlearning, whatever the optimizer
   settings. BatchNorm running statistics are buffers, not parameters, and are
   updated as in any training.

Known bug NOT reproduced (docs/methods.md §5): the RUM copy of the SalUn mask
ranks |g| ascending without negation and so keeps the SMALLEST gradients;
the official SalUn (and DEL) keep the largest, as here.
Differences from the official code: g is the gradient of the mean CE over
all of F (the official sums per-batch means, which weights a short last
batch more); the sign of the loss does not matter for |g|.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_fraction
from ..data.splits import DatasetInfo, ImageSplit
from ..training.loop import normalized_batches
from .base import register_method
from .common import OptimConfig
from .random_label import train_relabelled


@dataclass(frozen=True)
class SalUnConfig(OptimConfig):
    lr: float = 0.013
    epochs: int = 10
    threshold: float = 0.5  # fraction of all weights that SalUn may change

    def validate(self) -> None:
        super().validate()
        check_fraction(self.threshold, "methods.salun.threshold", open_low=True)


def forget_gradient(model: nn.Module, forget: ImageSplit, info: DatasetInfo, device,
                    batch_size: int = 256) -> dict[str, torch.Tensor]:
    """∇_θ of the mean CE over F, per named parameter (zeros where unused); eval mode; ``.grad`` untouched."""
    model.to(device)
    was_training = model.training
    model.eval()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    try:
        for _, x, y in normalized_batches(forget, info, batch_size, device):
            loss = F.cross_entropy(model(x), y, reduction="sum") / len(forget)  # chunks sum to the mean over F
            grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
            for (name, _), g in zip(named, grads):
                if g is not None:
                    total[name] += g
    finally:
        model.train(was_training)
    return total


def top_fraction_mask(scores: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """Bool masks keeping the int(N * fraction) largest scores of all N entries, ranked globally.

    Ties are broken by position (stable sort), so the mask is deterministic.
    """
    check_fraction(fraction, "threshold", open_low=True)
    flat = torch.cat([s.detach().flatten() for s in scores.values()])  # (N,)
    k = int(flat.numel() * fraction)
    order = torch.sort(flat, descending=True, stable=True).indices  # largest first (the RUM copy keeps the smallest)
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    keep[order[:k]] = True
    masks, start = {}, 0
    for name, s in scores.items():
        masks[name] = keep[start:start + s.numel()].view_as(s)
        start += s.numel()
    return masks


def saliency_mask(model: nn.Module, forget: ImageSplit, info: DatasetInfo, threshold: float, device,
                  batch_size: int = 256) -> dict[str, torch.Tensor]:
    """SalUn's hard mask: name -> bool tensor (param shape), True on the top ``threshold`` of |∇_θ CE_F|."""
    grads = forget_gradient(model, forget, info, device, batch_size)
    return top_fraction_mask({name: g.abs() for name, g in grads.items()}, threshold)


@register_method("salun", SalUnConfig, "random_label with gradients masked to the top-|grad CE_F| weights")
def salun(model, forget, retain, cfg: SalUnConfig, ctx):
    mask = saliency_mask(model, forget, ctx.info, cfg.threshold, ctx.device, cfg.batch_size)
    return train_relabelled(model, forget, retain, cfg, ctx, "salun", grad_mask=mask)
