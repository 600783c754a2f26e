"""Explicit, derived randomness (docs/architecture.md rule 5).

A per-item seed depends only on the base seed, a purpose string and the
item's index, so model k of K is the same model whatever K is.
"""
from __future__ import annotations

import hashlib

import torch


def derive_seed(base_seed: int, purpose: str, index: int = 0) -> int:
    digest = hashlib.sha256(f"{base_seed}/{purpose}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def generator(base_seed: int, purpose: str, index: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(base_seed, purpose, index))
