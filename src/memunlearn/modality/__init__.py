"""Modalities: image data and CNNs, text corpora and language models (base.py: the ``MODALITIES`` registry of
rules, the ``Modality`` protocol of behaviour, ``load_modality``).

Importing this package registers both modalities' rules only (applies.py, cheap); a modality's behaviour is
``modality/<name>/pipeline.py``, loaded by name, so a stage's DVC deps hold the folder of its run's modality alone.
"""
from .base import (IMAGE, MODALITIES, MODALITY_KEY, GridOriginal, Modality, ModalityRules, Prepared,
                   SubsetModels, dataset_problems, load_modality, prepared_modality)
from . import applies  # noqa: F401  (importing registers them)

__all__ = ["IMAGE", "MODALITIES", "MODALITY_KEY", "GridOriginal", "Modality", "ModalityRules", "Prepared",
           "SubsetModels", "dataset_problems", "load_modality", "prepared_modality"]
