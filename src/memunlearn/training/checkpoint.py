"""Model checkpoints that carry their own architecture, written atomically."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..data.splits import DatasetInfo
from ..io import atomic_write, require
from ..models import build_model


def save_checkpoint(model: nn.Module, model_name: str, info: DatasetInfo, path: Path) -> None:
    payload = {
        "model": model_name,
        "dataset_info": info.to_json(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: Path, produced_by: str) -> tuple[nn.Module, str]:
    """Rebuild the model from a checkpoint; returns (model on CPU, model name)."""
    model, name, _ = load_checkpoint_with_info(path, produced_by)
    return model, name


def load_checkpoint_with_info(path: Path, produced_by: str) -> tuple[nn.Module, str, DatasetInfo]:
    """(model on CPU, model name, the dataset info it was trained with)."""
    path = require(path, produced_by)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        info = DatasetInfo.from_json(payload["dataset_info"])
        model = build_model(payload["model"], info.in_channels, info.num_classes, info.image_size, seed=0)
        model.load_state_dict(payload["state_dict"])
    except Exception as exc:
        raise RuntimeError(
            f"checkpoint {path} is unreadable ({type(exc).__name__}); rerun `dvc repro --force {produced_by}`"
        ) from None
    return model, payload["model"], info
