"""``retrain``: the oracle, trained from scratch on R with the original recipe."""
from __future__ import annotations

from dataclasses import dataclass

from ..models import build_model
from ..seeding import derive_seed
from ..training.loop import fit
from .base import register_method
from .common import seeded


@dataclass(frozen=True)
class RetrainConfig:
    pass  # the recipe is the original training's (params section `train`)


@register_method("retrain", RetrainConfig, "oracle: train from scratch on the retain set")
def retrain(model, forget, retain, cfg: RetrainConfig, ctx):
    info = ctx.info
    fresh = build_model(ctx.recipe.model, info.in_channels, info.num_classes, info.image_size,
                        seed=derive_seed(ctx.seed, "unlearn/retrain_init"))
    fit(fresh, retain, info, ctx.recipe, seeded(ctx.seed, "retrain_order"), ctx.device)
    return fresh
