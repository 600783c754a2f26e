"""Input-space loss curvature per example (Garg et al.; METHODS.md §2.3).

Once per epoch, in eval mode, for every training example:

    g = grad_x l(x),   z = h * sign(g) / ||sign(g)||,   curv = || grad_x [l(x + z) - l(x)] ||_2

with z held fixed, so grad_x [l(x+z) - l(x)] = grad l(x+z) - grad l(x). The
proxy is the mean over epochs (higher = more memorized). Only input
gradients are taken: parameters, their .grad and BatchNorm statistics are
untouched, so recording curvature does not change training.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..data.splits import DatasetInfo, ImageSplit, normalize
from ..config import check_positive
from .loop import batch_positions


@dataclass(frozen=True)
class RecordConfig:
    """Params section ``train_records``: what the train stage records beside learning events."""

    curvature: bool = True  # loss-curvature proxy, once per epoch (about doubles training time)
    curvature_h: float = 0.01
    curvature_batch_size: int = 256
    # first-epoch per-example gradients of these layers (module-name prefixes, `input` = the input layer) for
    # first_epoch_ga; () = off
    first_epoch_grads: tuple[str, ...] = ("input",)

    def validate(self) -> None:
        check_positive(self.curvature_h, "train_records.curvature_h")
        check_positive(self.curvature_batch_size, "train_records.curvature_batch_size")
        layers = self.first_epoch_grads
        if not isinstance(layers, tuple) or not all(isinstance(p, str) and p for p in layers):
            raise ValueError("train_records.first_epoch_grads must be a list of layer names (e.g. [input]) or [] for off")


def input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example grad_x of the per-example loss: (B, C, H, W)."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")  # sum: each example's grad is its own
    return torch.autograd.grad(loss, x)[0]


def loss_curvature(model: nn.Module, x: torch.Tensor, y: torch.Tensor, h: float) -> torch.Tensor:
    """Curvature per example for one batch: (B,)."""
    g = input_grad(model, x, y)
    direction = torch.sign(g)
    norms = direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
    z = h * direction / norms
    return (input_grad(model, x + z, y) - g).flatten(1).norm(dim=1)


class CurvatureRecorder:
    """An ``on_epoch`` hook for ``fit``: accumulates each example's curvature every epoch."""

    def __init__(self, data: ImageSplit, info: DatasetInfo, device: torch.device, h: float = 0.01,
                 batch_size: int = 256):
        self.data, self.info, self.device, self.h, self.batch_size = data, info, device, h, batch_size
        self.sums = torch.zeros(len(data), dtype=torch.float64)
        self.epochs = 0
        self.seconds = 0.0

    def __call__(self, epoch: int, model: nn.Module) -> dict:
        start = time.perf_counter()
        was_training = model.training
        model.eval()
        for positions in batch_positions(len(self.data), self.batch_size, None):
            x = normalize(self.data.images[positions].to(self.device), self.info)
            y = self.data.labels[positions].to(self.device)
            self.sums[positions] += loss_curvature(model, x, y, self.h).double().cpu()
        model.train(was_training)
        self.epochs += 1
        self.seconds += time.perf_counter() - start
        return {"mean_curvature": float(self.sums.mean() / self.epochs)}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"example_id": self.data.example_ids.numpy(),
                             "loss_curvature": (self.sums / max(self.epochs, 1)).numpy()})
