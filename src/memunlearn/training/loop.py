"""Minimal, fast training and inference loops over in-memory ``ImageSplit``s.

No DataLoader: the whole split sits on the device as uint8 and batches are
index slices, which on a 2-core CPU is several times faster for small data.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..data.splits import DatasetInfo, ImageSplit, batch_positions, normalize
from .augment import augmented
from .recipe import TrainConfig, autocast

# on_batch(positions (B,), logits (B, C) train-mode, labels (B,)) -> None
BatchHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]
# on_epoch(epoch, model) -> metrics to add to that epoch's history row
EpochHook = Callable[[int, nn.Module], dict]
# on_step(model, x normalized (B, C, H, W), y (B,), positions (B,)) -> None, before the step's forward
StepHook = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], None]
# on_row(history row) -> None, once per epoch with its finished row (e.g. to log it live)
RowHook = Callable[[dict], None]


def batch_inputs(data: ImageSplit, positions: torch.Tensor, info: DatasetInfo, device) -> torch.Tensor:
    """Rows ``positions`` of ``data`` as normalized float inputs on ``device``: (B, C, H, W)."""
    return normalize(data.images[positions].to(device), info)


def normalized_batches(data: ImageSplit, info: DatasetInfo, batch_size: int, device,
                       gen: torch.Generator | None = None, inputs: torch.Tensor | None = None,
                       ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One pass over ``data`` (shuffled if ``gen``): (positions (B,), x normalized (B, C, H, W), y (B,)),
    x and y on ``device``; every loop over a split batches through here.

    inputs: ``normalize(data.images)`` computed once, on ``device`` (``normalized_inputs``): batches are then
    row gathers of it, the same values without normalizing every batch again.
    """
    for positions in batch_positions(len(data), batch_size, gen):
        x = inputs[positions.to(inputs.device)] if inputs is not None else batch_inputs(data, positions, info, device)
        yield positions, x, data.labels[positions].to(device)


def normalized_inputs(data: ImageSplit, info: DatasetInfo, device, channels_last: bool = False) -> torch.Tensor:
    """All of ``data`` normalized once: (N, C, H, W) float32 on ``device`` (channels-last strides if asked)."""
    x = normalize(data.images.to(device), info)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def sgd(model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def lr_schedule(optimizer: torch.optim.Optimizer, recipe: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """The recipe's per-epoch schedule: step decay (``lr_milestones``; none = constant lr) or cosine annealing
    to 0 over ``epochs`` (the RUM code's original CIFAR-10 ResNet-18: CosineAnnealingLR(T_max=epochs))."""
    if recipe.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs)
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(recipe.lr_milestones), recipe.lr_gamma)


def to_device(split: ImageSplit, device: torch.device) -> ImageSplit:
    return ImageSplit(split.images.to(device), split.labels.to(device), split.example_ids)


def fit(
    model: nn.Module,
    data: ImageSplit,
    info: DatasetInfo,
    recipe: TrainConfig,
    gen: torch.Generator,
    device: torch.device,
    *,
    on_batch: BatchHook | None = None,
    on_epoch: EpochHook | None = None,
    on_step: StepHook | None = None,
    on_row: RowHook | None = None,
    progress: str | None = None,
    inputs: torch.Tensor | None = None,
) -> list[dict]:
    """Train ``model`` in place with SGD and the recipe's schedule; return per-epoch history rows.

    Forward passes run in ``recipe.precision`` (autocast); hooks see fp32 logits. With ``recipe.augment`` on,
    each batch is cropped and flipped with draws from ``gen`` (training/augment.py) and the hooks see that batch.
    progress: a progress bar over the epochs with this title (shown on a terminal only).
    inputs: ``normalized_inputs(data)``, to skip normalizing every batch.
    """
    model.to(device, memory_format=recipe.memory_format)
    data = to_device(data, device)
    optimizer = sgd(model, recipe.lr, recipe.momentum, recipe.weight_decay)
    schedule = lr_schedule(optimizer, recipe)
    history = []
    epochs = tqdm(range(recipe.epochs), progress, unit="epoch", leave=False, disable=None if progress else True)
    for epoch in epochs:  # disable=None: the bar shows on a terminal only
        model.train()
        # summed on the device (float64, as Python floats would be): no host sync per step
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        for positions, x, y in normalized_batches(data, info, recipe.batch_size, device, gen, inputs):
            x = augmented(x, recipe.augment, gen, info)  # x itself when augmentation is off: no draws
            if on_step is not None:  # sees the parameters this step's gradient is taken at
                on_step(model, x, y, positions)
            with autocast(recipe.precision, device):
                logits = model(x)  # (B, C)
            logits = logits.float()  # the loss in fp32 (a no-op under fp32)
            loss = F.cross_entropy(logits, y)
            if on_batch is not None:  # learning events come from this same forward pass
                on_batch(positions, logits.detach(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach().double() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
        schedule.step()
        row = {"epoch": epoch + 1, "train_loss": loss_sum.item() / len(data), "train_acc": correct.item() / len(data)}
        if on_epoch is not None:
            row |= on_epoch(epoch, model)
        history.append(row)
        if on_row is not None:
            on_row(row)
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, data: ImageSplit, info: DatasetInfo, device: torch.device,
                   batch_size: int = 1024, precision: str = "fp32", inputs: torch.Tensor | None = None) -> torch.Tensor:
    """Eval-mode logits (N, C) float32 on the CPU, in ``data``'s row order; forward passes in ``precision``."""
    model.to(device).eval()
    out = []
    for _, x, _ in normalized_batches(data, info, batch_size, device, inputs=inputs):
        with autocast(precision, device):
            out.append(model(x).float().cpu())
    return torch.cat(out) if out else torch.empty(0, info.num_classes)


def predict_proba(model: nn.Module, data: ImageSplit, info: DatasetInfo, device: torch.device,
                  batch_size: int = 1024, precision: str = "fp32", inputs: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax outputs in eval mode: (N, C) float32 on the CPU, in ``data``'s row order."""
    return F.softmax(predict_logits(model, data, info, device, batch_size, precision, inputs), dim=1)


@torch.no_grad()
def embed(model: nn.Module, data: ImageSplit, info: DatasetInfo, device: torch.device, batch_size: int = 1024):
    """Penultimate-layer embeddings (N, D) in eval mode."""
    model.to(device).eval()
    return torch.cat([model.embed(x).cpu() for _, x, _ in normalized_batches(data, info, batch_size, device)])


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1]; NaN for an empty set."""
    if len(labels) == 0:
        return float("nan")
    return float((probs.argmax(1) == labels.cpu()).float().mean())


def true_class_prob(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return probs.gather(1, labels.cpu().view(-1, 1)).squeeze(1)  # (N,)
