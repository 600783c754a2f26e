"""``none``: leave the model as it is (RUM's choice for low-memorization subsets)."""
from __future__ import annotations

from dataclasses import dataclass

from .base import register_method


@dataclass(frozen=True)
class NoneConfig:
    pass


@register_method("none", NoneConfig, "identity: the model is left unchanged")
def none(model, forget, retain, cfg: NoneConfig, ctx):
    return model
