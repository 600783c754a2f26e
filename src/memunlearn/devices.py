"""Device choice: ``auto`` takes CUDA when present, else the CPU; torch's CPU threads from MEMUNLEARN_THREADS."""
from __future__ import annotations

import os

import torch

from .config import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda")
THREADS = "MEMUNLEARN_THREADS"  # torch's CPU threads for every stage and deletion request (1 on a shared CPU)


def set_threads_from_environment() -> None:
    """``torch.set_num_threads(MEMUNLEARN_THREADS)`` when the variable is set; a bad value is a one-line error."""
    threads = os.environ.get(THREADS)
    if threads is not None:
        if not threads.isdigit() or int(threads) < 1:
            raise ConfigError(f"{THREADS}={threads!r}: write a positive integer (1 on a shared CPU) or unset it")
        torch.set_num_threads(int(threads))


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available; set device: auto or cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"unknown device {name!r}; choose one of {list(DEVICE_CHOICES)} (or cuda:N)")
    return torch.device(name)
