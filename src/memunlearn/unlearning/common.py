"""Shared optimization pieces for unlearning methods (METHODS.md §5, 'Shared')."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_positive
from ..data.splits import DatasetInfo, ImageSplit, normalize
from ..seeding import generator
from ..training.loop import batch_positions, sgd

Batch = tuple[torch.Tensor, torch.Tensor]  # (x normalized (B, C, H, W), y (B,))


@dataclass(frozen=True)
class OptimConfig:
    """SGD, momentum 0.9, weight decay 5e-4 (METHODS.md §5); lr/epochs/batch per method."""

    lr: float = 0.01
    epochs: int = 5
    batch_size: int = 64
    momentum: float = 0.9
    weight_decay: float = 5e-4

    def validate(self) -> None:
        for name in ("lr", "epochs", "batch_size"):
            check_positive(getattr(self, name), name)


def batches(data: ImageSplit, info: DatasetInfo, batch_size: int, gen: torch.Generator, device) -> Iterator[Batch]:
    """One shuffled pass over ``data`` as normalized device batches."""
    for positions in batch_positions(len(data), batch_size, gen):
        yield normalize(data.images[positions].to(device), info), data.labels[positions].to(device)


def cycled_batches(data: ImageSplit, info: DatasetInfo, batch_size: int, gen: torch.Generator, device) -> Iterator[Batch]:
    """Endless reshuffled passes over ``data`` (to cycle F beside R)."""
    while True:
        yield from batches(data, info, batch_size, gen, device)


def optimize(
    model: nn.Module,
    cfg: OptimConfig,
    epoch_items: Callable[[int], Iterator],
    loss_fn: Callable[[nn.Module, object], torch.Tensor],
    device,
) -> nn.Module:
    """SGD for ``cfg.epochs`` epochs: one step on ``loss_fn(model, item)`` per item of ``epoch_items(epoch)``."""
    model.to(device).train()
    optimizer = sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    for epoch in range(cfg.epochs):
        for item in epoch_items(epoch):
            loss = loss_fn(model, item)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model


def ce(model: nn.Module, batch: Batch) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


def seeded(seed: int, purpose: str) -> torch.Generator:
    return generator(seed, f"unlearn/{purpose}")
