"""Models by name (registry in base.py). A model's architecture lives with its modality (modality/image/small_cnn.py,
modality/text/gpt2.py, ...) and is imported by name when first built (base.py ``ARCHITECTURES``)."""
from .base import (ARCHITECTURES, LM_MODELS, MODALITY_MODELS, MODEL_LIBRARIES, MODELS, LMFactory, ModelFactory,
                   architecture_files, build_lm, build_model, library_of, model_modality)

__all__ = ["ARCHITECTURES", "LM_MODELS", "MODALITY_MODELS", "MODEL_LIBRARIES", "MODELS", "library_of", "model_modality",
           "LMFactory", "ModelFactory", "architecture_files", "build_lm", "build_model"]
