"""Image architectures of a model library (``train.model: torchvision/resnet18``, ``timm/<name>``), wrapped with the
project's model contract (models/base.py): ``embed(x) -> (B, D)`` and ``head``, the final ``nn.Linear``, so DEL,
entanglement and first_epoch_ga work on them as on the registered CNNs.

The wrapper takes the library's last ``nn.Linear`` as the head (``fc`` of a ResNet, ``classifier.6`` of a VGG) and
runs the rest of the network as ``embed``; a network without one (SqueezeNet's conv classifier) is refused. A
first conv built for 3 channels is rebuilt for the data's channels. Weights saved from the library's own module
(``model.state_dict()`` of a torchvision ResNet) load through ``from_library_state``.
"""
from __future__ import annotations

import importlib
from typing import Callable, Mapping

import torch
from torch import nn


class LibraryModel(nn.Module):
    """forward(x (B, C, H, W)) = head(embed(x)); ``net`` is the library's module with its head replaced by
    ``nn.Identity`` (so ``net(x)`` is the head's input)."""

    def __init__(self, net: nn.Module, head_path: str):
        super().__init__()
        parent_path, _, leaf = head_path.rpartition(".")
        parent = net.get_submodule(parent_path) if parent_path else net
        head = getattr(parent, leaf)  # built by the library with num_classes outputs
        setattr(parent, leaf, nn.Identity())
        self.net, self.head_path = net, head_path
        self.head = head  # registered after net: the layers before it are the embedding's (first_epoch_grads.py)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.net(x), 1)  # (B, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))  # (B, num_classes)

    def from_library_state(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This wrapper's state dict for weights saved from the library's own module (keys ``conv1.weight``,
        ``fc.weight``); a state dict of the wrapper itself (``net.*``, ``head.*``) is returned as it is."""
        if any(k.startswith(("net.", "head.")) for k in state):
            return dict(state)
        prefix = f"{self.head_path}."
        return {(f"head.{k[len(prefix):]}" if k.startswith(prefix) else f"net.{k}"): v for k, v in state.items()}


def last_linear(net: nn.Module, name: str) -> str:
    """The module path of ``net``'s last ``nn.Linear`` (the classifier the wrapper takes as its head)."""
    linears = [path for path, module in net.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(f"train.model: {name!r} has no final nn.Linear classifier, so it has no head/embed for DEL, "
                         "entanglement and first_epoch_ga; choose an architecture with a Linear classifier "
                         "(e.g. torchvision/resnet18)")
    return linears[-1]


def fit_channels(net: nn.Module, in_channels: int) -> None:
    """Rebuild ``net``'s first conv for ``in_channels`` inputs (libraries build for 3; MNIST has 1)."""
    path, conv = next(((p, m) for p, m in net.named_modules() if isinstance(m, nn.Conv2d)), (None, None))
    if conv is None or conv.in_channels == in_channels:
        return
    parent_path, _, leaf = path.rpartition(".")
    parent = net.get_submodule(parent_path) if parent_path else net
    setattr(parent, leaf, nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                                    conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode))


def _library(package: str):
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ValueError(f"train.model: the {package!r} package is not installed; `pip install {package}` or "
                         "choose a registered model") from None


def _wrapped(name: str, build: Callable[[int], nn.Module]) -> Callable[[int, int, int], nn.Module]:
    def factory(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
        net = build(num_classes)
        fit_channels(net, in_channels)
        return LibraryModel(net, last_linear(net, name))

    factory.__name__ = factory.__qualname__ = name.replace("/", "_")
    return factory


def torchvision_factory(arch: str) -> Callable[[int, int, int], nn.Module]:
    """``torchvision/<arch>``: ``torchvision.models.get_model(arch)``, randomly initialized (no download)."""
    models = _library("torchvision").models
    if arch not in models.list_models():
        raise ValueError(f"train.model: torchvision has no architecture {arch!r}; choose one of "
                         "torchvision.models.list_models(), e.g. torchvision/resnet18")
    return _wrapped(f"torchvision/{arch}", lambda classes: models.get_model(arch, weights=None, num_classes=classes))


def timm_factory(arch: str) -> Callable[[int, int, int], nn.Module]:
    """``timm/<arch>``: ``timm.create_model(arch)``, randomly initialized (no download)."""
    timm = _library("timm")
    return _wrapped(f"timm/{arch}", lambda classes: timm.create_model(arch, pretrained=False, num_classes=classes))
