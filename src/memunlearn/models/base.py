"""The model registry ``MODELS`` and ``build_model``.

Every model exposes ``embed(x) -> (B, D)`` (the penultimate layer, used for
entanglement) and ``head`` (the final ``nn.Linear``, kept fully trainable by
DEL); ``forward(x) = head(embed(x))``.

Language models have their own registry, ``LM_MODELS``, built from the
tokenizer's vocabulary size and the context length (the image factory's
channels/classes/size do not describe them): ``forward(ids (B, T)) ->
logits (B, T, V)``; modality/text/gpt2.py.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..registry import Registry, modality_of

ModelFactory = Callable[[int, int, int], nn.Module]  # (in_channels, num_classes, image_size)
MODELS: Registry[ModelFactory] = Registry("model")


def build_model(name: str, in_channels: int, num_classes: int, image_size: int, seed: int) -> nn.Module:
    """A freshly initialized model; the same seed gives the same weights. ``name``: a registered model or
    ``<library>/<architecture>`` (``torchvision/resnet18``: ``MODEL_LIBRARIES``)."""
    factory = image_factory(name)
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
    """The modality whose registry holds model ``name`` (``train.model`` accepts any of them); a library's
    architecture (``torchvision/resnet18``) is an image model."""
    if library_of(name) is not None:
        return "image"
    return modality_of(name, MODALITY_MODELS, "model")


# Image architectures of a model library, named ``<library>/<architecture>`` in ``train.model``: the library builds
# the network and modality/image/library.py wraps it with the embed/head contract above. library -> (module under
# modality/, the function that takes the architecture's name and returns a ModelFactory).
MODEL_LIBRARIES: Registry[tuple[str, str]] = Registry("model library")
MODEL_LIBRARIES.register("torchvision", ("image.library", "torchvision_factory"))
MODEL_LIBRARIES.register("timm", ("image.library", "timm_factory"))


def library_of(name: str) -> str | None:
    """``torchvision`` for ``torchvision/resnet18``; None for a registered model's name. An unknown library is an
    error naming the known ones."""
    if "/" not in name:
        return None
    library = name.split("/", 1)[0]
    MODEL_LIBRARIES.get(library)
    return library


def image_factory(name: str) -> ModelFactory:
    """The factory of image model ``name``: a registered model's, or the library's for ``<library>/<arch>``."""
    library = library_of(name)
    if library is None:
        return MODELS.get(name)
    module, factory = MODEL_LIBRARIES.get(library)
    return getattr(importlib.import_module(f"{PACKAGE}.modality.{module}"), factory)(name.split("/", 1)[1])


# A model's architecture lives with its modality and is imported by name when first built, so a stage's DVC deps
# hold its run's modality's architectures only (src/memunlearn/modality/${modality}): editing a language model
# reruns no image stage, and the reverse. model name -> (registry, module under modality/, factory).
ARCHITECTURES: dict[str, tuple[Registry, str, str]] = {
    "small_cnn": (MODELS, "image.small_cnn", "small_cnn"),
    "resnet18_cifar": (MODELS, "image.resnet", "resnet18_cifar"),
    "gpt2_tiny": (LM_MODELS, "text.gpt2", "gpt2_tiny"),
    "gpt2_micro": (LM_MODELS, "text.gpt2", "gpt2_micro"),
}
PACKAGE = __package__.rpartition(".")[0]  # memunlearn


def _imported_when_built(module: str, factory: str) -> Callable[..., nn.Module]:
    """``memunlearn.modality.<module>``'s ``factory``, imported on the first call."""
    def build(*args: int) -> nn.Module:
        return getattr(importlib.import_module(f"{PACKAGE}.modality.{module}"), factory)(*args)

    build.__name__ = build.__qualname__ = factory
    return build


for _name, (_registry, _module, _factory) in ARCHITECTURES.items():
    _registry.register(_name, _imported_when_built(_module, _factory))


def architecture_files(names, root: Path | None = None) -> list[Path]:
    """The files defining models ``names`` (under ``root``, the package folder): what a cache of trained models
    keys on beside the code that imports them statically (provenance.py cannot see an import by name)."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    modules = {ARCHITECTURES[n][1] for n in names if n in ARCHITECTURES}
    modules |= {MODEL_LIBRARIES.get(library_of(n))[0] for n in names if "/" in n}
    return sorted(root.joinpath("modality", *m.split(".")).with_suffix(".py") for m in modules)
