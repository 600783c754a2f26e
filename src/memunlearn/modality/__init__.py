"""Modalities (registry in base.py): image data and CNNs, text corpora and language models.

Importing this package registers both modalities' descriptions only (cheap);
each text stage's implementation is its own module under ``text/``, imported
by its stage script alone, so a stage's DVC deps stay the code it runs.
"""
from .base import IMAGE, MODALITIES, MODALITY_KEY, Modality, StagePaths, prepared_modality
from . import image, text  # noqa: F401  (importing registers them)

__all__ = ["IMAGE", "MODALITIES", "MODALITY_KEY", "Modality", "StagePaths", "prepared_modality"]
