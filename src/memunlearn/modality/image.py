"""The image modality: every registered dataset of ``DATASETS`` and model of ``MODELS``, every method, proxy and
forget-set kind but the text-only ones; each stage runs its own script's body (stages/*.py)."""
from __future__ import annotations

from .base import IMAGE, MODALITIES, Modality

MODALITIES.register(IMAGE, Modality(IMAGE, "labelled images, CNNs (the default pipeline)"))
