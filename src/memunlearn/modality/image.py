"""The image modality: every registered dataset of ``DATASETS`` and model of ``MODELS``, every method, proxy and
forget-set kind but the text-only ones; each stage runs its own script's body (stages/*.py)."""
from __future__ import annotations

from typing import Any, Mapping

from .base import IMAGE, MODALITIES, Modality, used_method_blocks


def problems(params: Mapping[str, Any]) -> list[str]:
    """Keys whose values do not apply to an image run (one line each: key, why, fix)."""
    return [f"methods.{name}.gradients: {block['gradients']!r} is implemented for language models only; set "
            f"gradients: first_epoch for an image model"
            for name, block in used_method_blocks(params, "first_epoch_ga")
            if block.get("gradients", "first_epoch") != "first_epoch"]


MODALITIES.register(IMAGE, Modality(IMAGE, "labelled images, CNNs (the default pipeline)", problems=problems))
