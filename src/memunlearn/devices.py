"""Device choice: ``auto`` takes CUDA when present, else the CPU."""
from __future__ import annotations

import torch

from .config import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available; set device: auto or cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"unknown device {name!r}; choose one of {list(DEVICE_CHOICES)} (or cuda:N)")
    return torch.device(name)
