"""Per-batch image augmentation: the reference's RandomCrop(size, padding) + RandomHorizontalFlip (RUM code,
dataset.py), on a batch already on the device.

The reference crops the zero-padded raw image, then normalizes; here the batch is normalized first
(``loop.normalized_batches``), so the padding takes each channel's normalized zero, ``normalize(0)``: the same
values. Every draw comes from the run's own generator (a CPU ``torch.Generator``), so a run repeats, and
``fit_stacked`` draws model m's crops from model m's generator: model m of a stack is model m trained alone.
"""
from __future__ import annotations

import torch

from ..data.splits import DatasetInfo
from .recipe import Augment


def draw(augment: Augment, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch's draws, in this order: crop offsets (dy, dx) in [0, 2·padding] and flips, each (B,) on the CPU."""
    span = 2 * augment.crop_padding + 1
    dy = torch.randint(span, (batch,), generator=gen)
    dx = torch.randint(span, (batch,), generator=gen)
    flip = torch.randint(2, (batch,), generator=gen).bool() if augment.flip else torch.zeros(batch, dtype=torch.bool)
    return dy, dx, flip


def apply(x: torch.Tensor, draws: tuple[torch.Tensor, torch.Tensor, torch.Tensor], padding: int,
          info: DatasetInfo) -> torch.Tensor:
    """Normalized (B, C, H, W) -> the same shape: row b cropped at (dy[b], dx[b]) of the padded image and, where
    flip[b], mirrored left to right; one gather, memory layout kept."""
    dy, dx, flip = (t.to(x.device) for t in draws)
    batch, channels, height, width = x.shape
    mean = torch.tensor(info.mean, device=x.device, dtype=x.dtype)
    std = torch.tensor(info.std, device=x.device, dtype=x.dtype)
    fill = (-mean / std).view(1, channels, 1, 1)  # normalize(0): the reference pads the raw image with zeros
    padded = fill.expand(batch, channels, height + 2 * padding, width + 2 * padding).clone()
    padded[:, :, padding:padding + height, padding:padding + width] = x
    rows = dy[:, None] + torch.arange(height, device=x.device)  # (B, H)
    cols = torch.arange(width, device=x.device).expand(batch, width)  # (B, W)
    cols = dx[:, None] + torch.where(flip[:, None], width - 1 - cols, cols)
    out = padded.permute(0, 2, 3, 1)[torch.arange(batch, device=x.device)[:, None, None], rows[:, :, None],
                                     cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous(memory_format=_layout(x))


def augmented(x: torch.Tensor, augment: Augment, gen: torch.Generator, info: DatasetInfo) -> torch.Tensor:
    """``x`` (B, C, H, W) with this batch's crops and flips drawn from ``gen``; ``x`` itself when ``augment`` is
    off (no draws)."""
    if not augment.on:
        return x
    return apply(x, draw(augment, len(x), gen), augment.crop_padding, info)


def _layout(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format
