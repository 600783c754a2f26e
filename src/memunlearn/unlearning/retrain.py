"""``retrain``: the oracle, trained from scratch on R with the original recipe (training/oracle.py)."""
from __future__ import annotations

from dataclasses import dataclass

from ..training.oracle import train_oracle
from .base import register_method


@dataclass(frozen=True)
class RetrainConfig:
    pass  # the recipe is the original training's (params section `train`)


@register_method("retrain", RetrainConfig, "oracle: train from scratch on the retain set")
def retrain(model, forget, retain, cfg: RetrainConfig, ctx):
    return train_oracle(retain, ctx.info, ctx.recipe, ctx.device, ctx.seed)
