"""``finetune``: keep training on the retain set (catastrophic forgetting of F)."""
from __future__ import annotations

from dataclasses import dataclass

from .base import register_method
from .common import OptimConfig, batches, ce, optimize, seeded


@dataclass(frozen=True)
class FinetuneConfig(OptimConfig):
    lr: float = 0.01
    epochs: int = 5


@register_method("finetune", FinetuneConfig, "train on R (lr 0.01, 10 epochs in the reference)")
def finetune(model, forget, retain, cfg: FinetuneConfig, ctx):
    gen = seeded(ctx.seed, "finetune")
    epoch = lambda _: batches(retain, ctx.info, cfg.batch_size, gen, ctx.device)  # noqa: E731
    return optimize(model, cfg, epoch, ce, ctx.device)
