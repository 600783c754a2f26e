"""Models by name (registry in base.py); importing a model's module registers it."""
from .base import MODELS, ModelFactory, build_model
from . import resnet, small_cnn  # noqa: F401  (one module per model; importing registers it)

__all__ = ["MODELS", "ModelFactory", "build_model"]
