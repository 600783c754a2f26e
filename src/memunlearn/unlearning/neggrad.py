"""``neggrad``: gradient ascent on the forget set (minimize -CE on F)."""
from __future__ import annotations

from dataclasses import dataclass

from .base import register_method
from .common import OptimConfig, batches, ce, optimize, seeded


@dataclass(frozen=True)
class NegGradConfig(OptimConfig):
    lr: float = 1e-4
    epochs: int = 5


@register_method("neggrad", NegGradConfig, "gradient ascent on F (lr 1e-4, 5 epochs)")
def neggrad(model, forget, retain, cfg: NegGradConfig, ctx):
    gen = seeded(ctx.seed, "neggrad")
    epoch = lambda _: batches(forget, ctx.info, cfg.batch_size, gen, ctx.device)  # noqa: E731
    return optimize(model, cfg, epoch, lambda m, batch: -ce(m, batch), ctx.device)
