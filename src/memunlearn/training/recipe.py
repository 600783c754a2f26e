"""The training recipe shared by the original model, subset models and retraining."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import check_positive
from ..models import MODELS


@dataclass(frozen=True)
class TrainConfig:
    model: str = "small_cnn"
    epochs: int = 8
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_milestones: tuple[int, ...] = ()  # epochs at which lr *= lr_gamma (reference: 15, 20, 25 of 30)
    lr_gamma: float = 0.1
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        MODELS.get(self.model)
        for name in ("epochs", "batch_size", "lr"):
            check_positive(getattr(self, name), f"train.{name}")
