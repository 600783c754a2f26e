"""The model registry ``MODELS`` and ``build_model``.

Every model exposes ``embed(x) -> (B, D)`` (the penultimate layer, used for
entanglement) and ``head`` (the final ``nn.Linear``, kept fully trainable by
DEL); ``forward(x) = head(embed(x))``.

Language models have their own registry, ``LM_MODELS``, built from the
tokenizer's vocabulary size and the context length (the image factory's
channels/classes/size do not describe them): ``forward(ids (B, T)) ->
logits (B, T, V)``; models/gpt2.py.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..registry import Registry, modality_of

ModelFactory = Callable[[int, int, int], nn.Module]  # (in_channels, num_classes, image_size)
MODELS: Registry[ModelFactory] = Registry("model")


def build_model(name: str, in_channels: int, num_classes: int, image_size: int, seed: int) -> nn.Module:
    """A freshly initialized model; the same seed gives the same weights."""
    factory = MODELS.get(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory(in_channels, num_classes, image_size)


LMFactory = Callable[[int, int], nn.Module]  # (vocab_size, context)
LM_MODELS: Registry[LMFactory] = Registry("language model")


def build_lm(name: str, vocab_size: int, context: int, seed: int) -> nn.Module:
    """A freshly initialized language model; the same seed gives the same weights."""
    factory = LM_MODELS.get(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory(vocab_size, context)


MODALITY_MODELS: dict[str, Registry] = {"image": MODELS, "text": LM_MODELS}  # modality -> its model registry


def model_modality(name: str) -> str:
    """The modality whose registry holds model ``name`` (``train.model`` accepts any of them)."""
    return modality_of(name, MODALITY_MODELS, "model")
