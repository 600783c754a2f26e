"""``neggrad_plus``: descend on R while ascending on F (Kurmanji et al.'s NegGrad+).

loss = alpha * CE(R batch) - (1 - alpha) * CE(F batch), with F cycled beside R
so every retain batch is paired with a forget batch.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import check_fraction
from .base import register_method
from .common import OptimConfig, batches, ce, cycled_batches, optimize, seeded


@dataclass(frozen=True)
class NegGradPlusConfig(OptimConfig):
    alpha: float = 0.99
    lr: float = 0.01
    epochs: int = 5

    def validate(self) -> None:
        super().validate()
        check_fraction(self.alpha, "methods.neggrad_plus.alpha")


@register_method("neggrad_plus", NegGradPlusConfig, "alpha*CE_R - (1-alpha)*CE_F, F cycled beside R")
def neggrad_plus(model, forget, retain, cfg: NegGradPlusConfig, ctx):
    gen = seeded(ctx.seed, "neggrad_plus")
    forget_stream = cycled_batches(forget, ctx.info, cfg.batch_size, gen, ctx.device)

    def epoch(_):  # items: (retain batch, forget batch)
        for retain_batch in batches(retain, ctx.info, cfg.batch_size, gen, ctx.device):
            yield retain_batch, next(forget_stream)

    def loss(model, item):
        retain_batch, forget_batch = item
        return cfg.alpha * ce(model, retain_batch) - (1 - cfg.alpha) * ce(model, forget_batch)

    return optimize(model, cfg, epoch, loss, ctx.device)
