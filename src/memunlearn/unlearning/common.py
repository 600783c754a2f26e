"""Shared optimization pieces for unlearning methods (docs/methods.md §5, 'Shared')."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

import torch
from torch import nn

from ..config import check_positive
from ..data.base import ExampleSplit
from ..data.splits import ImageBatch
from ..data.text import TokenBatch
from ..seeding import generator
from ..training.loop import sgd

Batch = ImageBatch | TokenBatch  # a split's training batch: x, y (images) or tokens, pad_id (text); .loss(model)


@dataclass(frozen=True)
class OptimConfig:
    """SGD, momentum 0.9, weight decay 5e-4 (docs/methods.md §5); lr/epochs/batch per method."""

    lr: float = 0.01
    epochs: int = 5
    batch_size: int = 64
    momentum: float = 0.9
    weight_decay: float = 5e-4

    def validate(self) -> None:
        for name in ("lr", "epochs", "batch_size"):
            check_positive(getattr(self, name), name)


def batches(data: ExampleSplit, info, batch_size: int, gen: torch.Generator, device) -> Iterator[Batch]:
    """One shuffled pass over ``data`` as its device training batches (``ExampleSplit.training_batches``)."""
    yield from data.training_batches(info, batch_size, gen, device)


def cycled_batches(data: ExampleSplit, info, batch_size: int, gen: torch.Generator, device) -> Iterator[Batch]:
    """Endless reshuffled passes over ``data`` (to cycle F beside R)."""
    while True:
        yield from batches(data, info, batch_size, gen, device)


class FreezeOutsideMask:
    """Masked training as the official SalUn code does it: after every optimizer step, each weight outside
    its mask is restored to its value before training and its momentum buffer entry is cleared.

    Masking the gradient alone leaves SGD's weight decay (wd·θ) and momentum (from earlier steps) acting on
    the masked-out weights; restoring them makes them bit-identical to the start whatever the optimizer
    settings. ``masks``: parameter name -> bool tensor of the parameter's shape (True = may train); a
    parameter absent from ``masks`` trains freely (e.g. DEL's head).
    """

    def __init__(self, model: nn.Module, masks: Mapping[str, torch.Tensor]):
        params = dict(model.named_parameters())
        unknown = sorted(set(masks) - set(params))
        if unknown:
            raise ValueError(f"mask names {unknown[:5]}, not parameters of this model")
        self.frozen = []  # (param, ~mask, values outside the mask)
        for name, keep in masks.items():
            p = params[name]
            keep = keep.to(device=p.device, dtype=torch.bool)
            if keep.shape != p.shape:
                raise ValueError(f"mask {name!r} has shape {tuple(keep.shape)}, the parameter {tuple(p.shape)}")
            if not bool(keep.all()):
                self.frozen.append((p, ~keep, p.detach()[~keep].clone()))

    @torch.no_grad()
    def __call__(self, optimizer: torch.optim.Optimizer, *_args) -> None:
        for p, off, values in self.frozen:
            p[off] = values
            buf = optimizer.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                buf[off] = 0.0

    def attach(self, optimizer: torch.optim.Optimizer):
        """Run after every ``optimizer.step()``; returns the hook handle."""
        return optimizer.register_step_post_hook(self)


def optimize(
    model: nn.Module,
    cfg: OptimConfig,
    epoch_items: Callable[[int], Iterator],
    loss_fn: Callable[[nn.Module, object], torch.Tensor],
    device,
    masks: Mapping[str, torch.Tensor] | None = None,
) -> nn.Module:
    """SGD for ``cfg.epochs`` epochs: one step on ``loss_fn(model, item)`` per item of ``epoch_items(epoch)``.

    ``masks`` (name -> bool, parameter shape): only the True entries train; the rest are restored and
    their momentum cleared after every step (``FreezeOutsideMask``).
    """
    model.to(device).train()
    optimizer = sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    if masks is not None:
        FreezeOutsideMask(model, masks).attach(optimizer)
    for epoch in range(cfg.epochs):
        for item in epoch_items(epoch):
            loss = loss_fn(model, item)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model


def ce(model: nn.Module, batch: Batch) -> torch.Tensor:
    """The batch's training loss (cross-entropy; for text, the mean next-token cross-entropy)."""
    return batch.loss(model)


def seeded(seed: int, purpose: str) -> torch.Generator:
    return generator(seed, f"unlearn/{purpose}")
