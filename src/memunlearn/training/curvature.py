"""Input-space loss curvature per example (Garg et al.; docs/methods.md §2.3), two estimators.

Once per epoch, in eval mode, for every training example, with g = grad_x l(x)
and the perturbation z held fixed (so grad_x [l(x+z) - l(x)] = grad l(x+z) - g):

``sign_gradient`` (the RUM code's estimator; h = ``curvature_h``, 0.01, one draw):

    z = h * sign(g) / ||sign(g)||,   curv = || grad l(x + z) - g ||_2

``rademacher`` (Garg et al., "Memorization through the lens of curvature of
loss function around samples": h = 1e-3, n = 10 draws of a Rademacher vector):

    v ~ U{-1, +1}^D,   z = h * v,   curv = (1/n) sum_draws || grad l(x + z) - g ||_2

Garg et al.'s code perturbs by h*v unnormalized (||z|| = h*sqrt(D)) and
differentiates the batch-mean loss; here each example's loss is its own (sum
reduction), which removes their constant 1/B factor. The draws come from a
generator seeded by the recorder's seed and the epoch. Each proxy is the mean
over epochs (higher = more memorized). Only input gradients are taken:
parameters, their .grad and BatchNorm statistics are untouched, so recording
curvature does not change training.
"""
from __future__ import annotations

import time
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..data.splits import DatasetInfo, ImageSplit
from ..config import check_choice
from ..seeding import generator
from .loop import normalized_batches
from .recipe import ESTIMATORS


def input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example grad_x of the per-example loss: (B, C, H, W)."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")  # sum: each example's grad is its own
    return torch.autograd.grad(loss, x)[0]


def loss_curvature(model: nn.Module, x: torch.Tensor, y: torch.Tensor, h: float) -> torch.Tensor:
    """Sign-gradient curvature (RUM code) per example for one batch: (B,)."""
    g = input_grad(model, x, y)
    direction = torch.sign(g)
    norms = direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
    z = h * direction / norms
    return (input_grad(model, x + z, y) - g).flatten(1).norm(dim=1)


def rademacher_curvature(model: nn.Module, x: torch.Tensor, y: torch.Tensor, h: float, draws: int,
                         gen: torch.Generator) -> torch.Tensor:
    """Garg et al.'s curvature per example for one batch: mean over ``draws`` Rademacher z = h*v of
    ||grad l(x + z) - grad l(x)||: (B,). ``gen`` is a CPU generator (draws are moved to x's device)."""
    g = input_grad(model, x, y)
    total = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    for _ in range(draws):
        v = torch.randint(0, 2, x.shape, generator=gen).to(x.device, x.dtype) * 2 - 1  # ±1
        total += (input_grad(model, x + h * v, y) - g).flatten(1).norm(dim=1).double()
    return (total / draws).to(x.dtype)


ESTIMATOR_COLUMNS = {"sign_gradient": "loss_curvature", "rademacher": "loss_curvature_rademacher"}


class CurvatureRecorder:
    """An ``on_epoch`` hook for ``fit``: accumulates each example's curvature every epoch, per estimator.

    ``seconds`` is the total recording time, ``seconds_by_estimator`` its split; ``to_frame`` has one
    column per estimator (``ESTIMATOR_COLUMNS``)."""

    def __init__(self, data: ImageSplit, info: DatasetInfo, device: torch.device, h: float = 0.01,
                 batch_size: int = 256, estimators: tuple[str, ...] = ESTIMATORS, rademacher_h: float = 1e-3,
                 draws: int = 10, seed: int = 0):
        for name in estimators:
            check_choice(name, ESTIMATORS, "train_records.curvature_estimators")
        self.data, self.info, self.device, self.h, self.batch_size = data, info, device, h, batch_size
        self.estimators, self.rademacher_h, self.draws, self.seed = tuple(estimators), rademacher_h, draws, seed
        self.sums = {name: torch.zeros(len(data), dtype=torch.float64) for name in self.estimators}
        self.seconds_by_estimator = {name: 0.0 for name in self.estimators}
        self.epochs = 0

    @property
    def seconds(self) -> float:
        return sum(self.seconds_by_estimator.values())

    def _estimate(self, name: str, model: nn.Module, x, y, gen) -> torch.Tensor:
        if name == "sign_gradient":
            return loss_curvature(model, x, y, self.h)
        return rademacher_curvature(model, x, y, self.rademacher_h, self.draws, gen)

    def __call__(self, epoch: int, model: nn.Module) -> dict:
        was_training = model.training
        model.eval()
        row = {}
        for name in self.estimators:
            start = time.perf_counter()
            gen = generator(self.seed, f"curvature/{name}", epoch)
            for positions, x, y in normalized_batches(self.data, self.info, self.batch_size, self.device):
                self.sums[name][positions] += self._estimate(name, model, x, y, gen).double().cpu()
            self.seconds_by_estimator[name] += time.perf_counter() - start
            row[f"mean_{ESTIMATOR_COLUMNS[name]}"] = float(self.sums[name].mean() / (self.epochs + 1))
        model.train(was_training)
        self.epochs += 1
        return row

    def to_frame(self) -> pd.DataFrame:
        columns = {ESTIMATOR_COLUMNS[n]: (s / max(self.epochs, 1)).numpy() for n, s in self.sums.items()}
        return pd.DataFrame({"example_id": self.data.example_ids.numpy(), **columns})
