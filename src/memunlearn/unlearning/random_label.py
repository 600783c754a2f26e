"""``random_label``: relabel F with random wrong labels and train on F ∪ R (docs/methods.md §5).

Every epoch F gets fresh labels, drawn uniformly among the C - 1 wrong
classes (never the true label), from a generator derived from the seed and
the epoch index; the relabelled F and R are shuffled together. SalUn
(``salun``) is this same training with the gradients masked, so the loop
lives in ``train_relabelled`` with an optional ``grad_mask``.

Reference differences (OPTML-Group/Unlearn-Saliency, ``RL``): it draws
labels with ``randint(0, C)``, which may hit the true label, and for
CIFAR-10 it passes over F and then R instead of shuffling them together.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from ..data.splits import ImageSplit
from ..seeding import generator
from .base import register_method
from .common import OptimConfig, batches, ce, optimize, seeded


@dataclass(frozen=True)
class RandomLabelConfig(OptimConfig):
    lr: float = 0.01
    epochs: int = 10


def wrong_labels(labels: torch.Tensor, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """Uniform over the wrong classes: (y + U{1..C-1}) mod C is never y. labels: (N,) -> (N,)."""
    if num_classes < 2:
        raise ValueError(f"random wrong labels need at least 2 classes, got {num_classes}")
    shift = torch.randint(1, num_classes, labels.shape, generator=gen)
    return (labels.cpu() + shift) % num_classes


def epoch_data(forget: ImageSplit, retain: ImageSplit, num_classes: int, seed: int, purpose: str,
               epoch: int) -> ImageSplit:
    """F with epoch ``epoch``'s random wrong labels, followed by R (unchanged)."""
    gen = generator(seed, f"unlearn/{purpose}/labels", epoch)  # per epoch: epoch e's labels don't depend on E
    return forget.with_labels(wrong_labels(forget.labels, num_classes, gen)).concat(retain)


def train_relabelled(model: nn.Module, forget: ImageSplit, retain: ImageSplit, cfg: OptimConfig, ctx, purpose: str,
                     grad_mask: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """SGD on CE over (F relabelled each epoch) ∪ R. ``grad_mask`` (name -> bool, param shape): only the True
    weights train; gradients outside it are zeroed, and after every step the weights outside it are restored
    and their momentum cleared (official SalUn), so weight decay and momentum cannot move them either."""
    order = seeded(ctx.seed, f"{purpose}/order")
    epoch = lambda e: batches(  # noqa: E731
        epoch_data(forget, retain, ctx.info.num_classes, ctx.seed, purpose, e), ctx.info, cfg.batch_size, order,
        ctx.device)
    if grad_mask is None:
        return optimize(model, cfg, epoch, ce, ctx.device)
    handles = _mask_gradients(model.to(ctx.device), grad_mask)
    try:
        return optimize(model, cfg, epoch, ce, ctx.device, masks=grad_mask)
    finally:
        for handle in handles:
            handle.remove()


def _mask_gradients(model: nn.Module, grad_mask: Mapping[str, torch.Tensor]) -> list:
    """Hooks that zero each parameter's gradient outside its mask as backward computes it."""
    params = dict(model.named_parameters())
    missing = sorted(set(params) - set(grad_mask))
    if missing:
        raise ValueError(f"grad_mask lacks parameters {missing[:5]}; give one bool tensor per named parameter")
    handles = []
    for name, param in params.items():
        keep = grad_mask[name].to(device=param.device, dtype=torch.bool)
        if keep.shape != param.shape:
            raise ValueError(f"grad_mask[{name!r}] has shape {tuple(keep.shape)}, the parameter {tuple(param.shape)}")
        # masked_fill writes +0.0 (a product would give -0.0 and pass NaNs into the momentum of masked weights)
        handles.append(param.register_hook(lambda g, keep=keep: g.masked_fill(~keep, 0.0)))
    return handles


@register_method("random_label", RandomLabelConfig, "train on F ∪ R, F relabelled with random wrong labels each epoch")
def random_label(model, forget, retain, cfg: RandomLabelConfig, ctx):
    return train_relabelled(model, forget, retain, cfg, ctx, "random_label")
