"""``retrain``: the oracle, trained from scratch on R with the oracle's recipe (training/oracle.py)."""
from __future__ import annotations

from dataclasses import dataclass

from ..training.oracle import train_oracle
from .base import register_method


@dataclass(frozen=True)
class RetrainConfig:
    pass  # the recipe is the oracle's: params `train` with `oracle.recipe` over it (recipe.py recipe_for)


@register_method("retrain", RetrainConfig, "oracle: train from scratch on the retain set")
def retrain(model, forget, retain, cfg: RetrainConfig, ctx):
    return train_oracle(retain, ctx.info, ctx.retrain_recipe, ctx.device, ctx.seed)
