"""``del``: Deletion by Example Localization (docs/methods.md §5 "DEL"): localize, reset, fine-tune.

1. Criticality S = |Σ_{batches of F} θ ⊙ ∇_θ CE_F| (eval mode).
2. Channel granularity: a tensor with >= 2 dims is viewed as [out_channels, -1]
   and each channel scored by the mean of its top-k entries; 1-D tensors keep
   per-element scores. k = ``topk_fraction`` (10%) of ``topk_basis``:
   ``out_channels`` (default, as the reference ``generate_mask.py``, which
   takes ``int(0.1 * len(rows))`` of the [out_channels, -1] view: 51 of the
   4,608 entries of a ResNet-18 layer4 conv's channel) or ``fan_in`` (10% of
   the row, 460 there: the mean over many more entries, closer to the
   channel's average criticality than to its peak). k is at least 1 (the
   reference's int() gives 0, an empty mean, below 10 channels) and at most
   the row length.
3. One global ranking; the top ``threshold`` fraction of parameters (whole
   channels: the count may fall short of the fraction by less than a channel).
4. Selected entries are reset to a seeded fresh initialization of the same
   architecture (the reference's is unseeded); BatchNorm running statistics
   are kept.
5. Fine-tune on R with gradients multiplied by the mask and the classifier
   head fully trainable; SGD momentum 0.9, weight decay 0, cosine schedule to
   0.01·lr. After every step the weights outside the mask are restored and
   their momentum cleared (as official SalUn does for its masked training),
   so they stay bit-identical; the reference only masks gradients, which
   differs when weight decay is set (it would then shrink every parameter).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_choice, check_fraction
from ..data.splits import DatasetInfo, ImageSplit
from ..models import build_model
from ..seeding import derive_seed
from ..training.loop import sgd
from .base import register_method
from .common import FreezeOutsideMask, OptimConfig, batches, ce, seeded

Masks = dict[str, torch.Tensor]  # parameter name -> bool tensor of the parameter's shape
TOPK_BASES = ("out_channels", "fan_in")


@dataclass(frozen=True)
class DelConfig(OptimConfig):
    threshold: float = 0.3  # fraction of all parameters reset and fine-tuned
    topk_fraction: float = 0.1  # a channel's score: mean of its top k entries, k = topk_fraction * topk_basis
    topk_basis: str = "out_channels"  # out_channels (reference generate_mask.py) | fan_in (entries per channel)
    lr: float = 0.015
    epochs: int = 30
    weight_decay: float = 0.0

    def validate(self) -> None:
        super().validate()
        check_fraction(self.threshold, "methods.del.threshold", open_low=True)
        check_fraction(self.topk_fraction, "methods.del.topk_fraction", open_low=True)
        check_choice(self.topk_basis, TOPK_BASES, "methods.del.topk_basis")


def criticality(model: nn.Module, forget: ImageSplit, info: DatasetInfo, device, batch_size: int = 256) -> Masks:
    """S = |Σ_batches θ ⊙ ∇_θ CE_F| per parameter entry (DEL step 1), model in eval mode."""
    model.to(device).eval()
    named = [(n, p) for n, p in model.named_parameters()]
    totals = {n: torch.zeros_like(p) for n, p in named}
    for batch in batches(forget, info, batch_size, None, device):  # None: fixed order, no randomness
        grads = torch.autograd.grad(ce(model, batch), [p for _, p in named], allow_unused=True)
        for (n, p), g in zip(named, grads):
            if g is not None:
                totals[n] += p.detach() * g
    return {n: t.abs() for n, t in totals.items()}


def topk_size(out_channels: int, fan_in: int, topk_fraction: float, basis: str = "out_channels") -> int:
    """k of a channel's top-k mean: ``topk_fraction`` of ``out_channels`` or of ``fan_in``, within [1, fan_in]."""
    check_choice(basis, TOPK_BASES, "methods.del.topk_basis")
    n = out_channels if basis == "out_channels" else fan_in
    return min(fan_in, max(1, int(topk_fraction * n)))


def channel_scores(scores: Masks, topk_fraction: float = 0.1, topk_basis: str = "out_channels") -> Masks:
    """Every channel of a >= 2-D tensor gets the mean of its top-k scores, broadcast (DEL step 2)."""
    out = {}
    for name, s in scores.items():
        if s.dim() < 2:
            out[name] = s
            continue
        rows = s.reshape(s.shape[0], -1)  # (out_channels, fan)
        k = topk_size(rows.shape[0], rows.shape[1], topk_fraction, topk_basis)
        out[name] = rows.topk(k, dim=1).values.mean(1, keepdim=True).expand_as(rows).reshape(s.shape)
    return out


def select_top(scores: Masks, threshold: float) -> Masks:
    """Masks of the top ``threshold`` fraction of all entries by one global ranking (DEL step 3).

    Ranking units are channels (>= 2-D) or entries (1-D); units are taken in
    descending score order while the total stays within the budget.
    """
    unit_scores, unit_sizes, owners = [], [], []
    for name, s in scores.items():
        rows = s.reshape(s.shape[0], -1) if s.dim() >= 2 else s.reshape(-1, 1)  # (units, size)
        unit_scores.append(rows[:, 0])
        unit_sizes.append(torch.full((len(rows),), rows.shape[1], dtype=torch.long))
        owners.append((name, len(rows)))
    unit_scores, unit_sizes = torch.cat(unit_scores).cpu(), torch.cat(unit_sizes)
    budget = int(round(threshold * int(unit_sizes.sum())))
    order = torch.sort(unit_scores, descending=True, stable=True).indices
    chosen = torch.zeros(len(unit_scores), dtype=torch.bool)
    chosen[order] = unit_sizes[order].cumsum(0) <= budget
    masks, start = {}, 0
    for name, n_units in owners:
        s = scores[name]
        unit_mask = chosen[start:start + n_units].to(s.device)
        masks[name] = (unit_mask.view(-1, *[1] * (s.dim() - 1)).expand_as(s) if s.dim() >= 2
                       else unit_mask.view(s.shape)).clone()
        start += n_units
    return masks


def localize(model: nn.Module, forget: ImageSplit, info: DatasetInfo, device, threshold: float = 0.3,
             topk_fraction: float = 0.1, batch_size: int = 256, topk_basis: str = "out_channels") -> Masks:
    """DEL steps 1-3: the bool masks of the parameters critical to F."""
    scores = criticality(model, forget, info, device, batch_size)
    return select_top(channel_scores(scores, topk_fraction, topk_basis), threshold)


@torch.no_grad()
def reset(model: nn.Module, masks: Masks, fresh: nn.Module) -> nn.Module:
    """DEL step 4, in place: selected entries take ``fresh``'s values; the rest and all buffers stay."""
    fresh_params = dict(fresh.named_parameters())
    for name, p in model.named_parameters():
        init = fresh_params.get(name)
        if init is None or init.shape != p.shape:
            raise ValueError(f"DEL: the fresh model has no parameter {name} of shape {tuple(p.shape)}; "
                             "train.model must name the architecture being unlearned")
        p.copy_(torch.where(masks[name], init.to(p.device, p.dtype), p))
    return model


def masked_finetune(model: nn.Module, retain: ImageSplit, masks: Masks, cfg: DelConfig, info: DatasetInfo,
                    gen: torch.Generator, device) -> nn.Module:
    """DEL step 5: SGD on CE_R with grad ⊙ mask (head: all ones), cosine lr to 0.01·lr; weights outside the
    mask are restored and their momentum cleared after every step."""
    model.to(device).train()
    head = {id(p) for p in model.head.parameters()}
    named = [(p, None if id(p) in head else masks[n].to(device, p.dtype)) for n, p in model.named_parameters()]
    optimizer = sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    FreezeOutsideMask(model, {n: masks[n] for n, p in model.named_parameters() if id(p) not in head}).attach(optimizer)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs, eta_min=0.01 * cfg.lr)
    for _ in range(cfg.epochs):
        for batch in batches(retain, info, cfg.batch_size, gen, device):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(batch[0]), batch[1]).backward()
            for p, mask in named:
                if mask is not None and p.grad is not None:
                    p.grad.mul_(mask)
            optimizer.step()
        schedule.step()
    return model


@register_method("del", DelConfig, "localize the parameters critical to F, reset them, fine-tune them on R")
def del_(model, forget, retain, cfg: DelConfig, ctx):
    info = ctx.info
    masks = localize(model, forget, info, ctx.device, cfg.threshold, cfg.topk_fraction, cfg.batch_size,
                     cfg.topk_basis)
    fresh = build_model(ctx.recipe.model, info.in_channels, info.num_classes, info.image_size,
                        seed=derive_seed(ctx.seed, "unlearn/del_init"))
    reset(model, masks, fresh)
    return masked_finetune(model, retain, masks, cfg, info, seeded(ctx.seed, "del_order"), ctx.device)
