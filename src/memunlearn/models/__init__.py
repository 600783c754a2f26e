"""Models by name (registry in base.py); importing a model's module registers it."""
from .base import LM_MODELS, MODALITY_MODELS, MODELS, LMFactory, ModelFactory, build_lm, build_model, model_modality
from . import gpt2, resnet, small_cnn  # noqa: F401  (one module per model; importing registers it)

__all__ = ["LM_MODELS", "MODALITY_MODELS", "MODELS", "model_modality", "LMFactory", "ModelFactory", "build_lm", "build_model"]
