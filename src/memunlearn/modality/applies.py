"""What applies to each modality, and the params keys that do not (``problems``); registers both in
``MODALITIES``. Images: every registered dataset of ``DATASETS`` and model of ``MODELS``, every method, proxy and
forget-set kind but the text-only ones. Text: a corpus of ``TEXT_CORPORA`` cut into fixed-length sequences with
planted canaries, a language model of ``LM_MODELS``."""
from __future__ import annotations

from typing import Any, Mapping

from .base import IMAGE, MODALITIES, ModalityRules, used_method_blocks


def image_problems(params: Mapping[str, Any]) -> list[str]:
    """Keys whose values do not apply to an image run (one line each: key, why, fix)."""
    return [f"methods.{name}.gradients: {block['gradients']!r} is implemented for language models only; set "
            f"gradients: first_epoch for an image model"
            for name, block in used_method_blocks(params, "first_epoch_ga")
            if block.get("gradients", "first_epoch") != "first_epoch"]


MODALITIES.register(IMAGE, ModalityRules(IMAGE, "labelled images, CNNs (the default pipeline)",
                                         problems=image_problems))

TEXT = "text"
METHODS = ("none", "finetune", "neggrad", "neggrad_plus", "first_epoch_ga")  # built on unlearning/common.py's
#   batches/ce (TokenBatch) or, first_epoch_ga, on lm_first_epoch_ga; the rest read image labels or logits
PROXIES = ("binary_acc", "confidence", "entropy", "max_conf")  # the learning-event proxies (TokenEventRecorder)
KINDS = ("random", "low", "mid", "high", "mix", "canaries")
SCORES = ("exact", "exact_prob")  # next-token accuracy / geometric-mean token probability, in − out
IMAGE_LAYERS = ("penultimate", "input")  # train_records.first_epoch_grads aliases of image models only


def text_problems(params: Mapping[str, Any]) -> list[str]:
    """Keys whose values do not apply to a text run (one line each: key, why, fix)."""
    def get(*keys, default=None):
        node: Any = params
        for key in keys:
            node = node.get(key) if isinstance(node, Mapping) else None
        return default if node is None else node

    out = []
    if get("train_records", "curvature", default=True) is not False:
        out.append("train_records.curvature: loss curvature is recorded for image models only; set "
                   "train_records.curvature: false for a text corpus")
    layers = get("train_records", "first_epoch_grads", default=["head", "penultimate"])
    for layer in [x for x in layers if x in IMAGE_LAYERS] if isinstance(layers, list) else []:
        out.append(f"train_records.first_epoch_grads: {layer!r} names an image layer; for a language model use "
                   "embedding, head, block:<i>, all or a module name, e.g. [embedding]")
    for keys in (("train",), ("memorize", "recipe"), ("oracle", "recipe")):  # auto resolves to fp32 for them
        if get(*keys, "precision", default="fp32") == "bf16":
            key = ".".join((*keys, "precision"))
            out.append(f"{key}: language models train in fp32 only here; set {key}: fp32 (or auto)")
    if get("memorize", "num_models") == "auto":
        out.append("memorize.num_models: auto (adaptive K) is image-only; give a number, e.g. 8")
    if get("memorize", "influence_top", default=0):
        out.append("memorize.influence_top: train->test influence is image-only; set memorize.influence_top: 0")
    if get("evaluate", "mia_feature", default="true_prob") != "true_prob":
        out.append("evaluate.mia_feature: a text run's MIA reads each sequence's loss (true_prob = exp(-mean "
                   "token loss)); set evaluate.mia_feature: true_prob")
    for name, block in used_method_blocks(params, "first_epoch_ga"):
        ga_layers = block.get("layers", [])
        for layer in [x for x in ga_layers if x in IMAGE_LAYERS] if isinstance(ga_layers, list) else []:
            out.append(f"methods.{name}.layers: {layer!r} names an image layer; for a language model use "
                       "embedding, head, block:<i> or all, e.g. [embedding]")
    return out + all_epochs_outside_grids(params)


def all_epochs_outside_grids(params: Mapping[str, Any]) -> list[str]:
    """A first_epoch_ga block reading ``gradients: all_epochs`` where no grid original recorded them: the
    pipeline's original stores first-epoch gradients only (modality/text/ablation.py ``recordings``)."""
    from ..config import used_methods

    all_epochs = {name for name, block in used_method_blocks(params, "first_epoch_ga")
                  if block.get("gradients") == "all_epochs"}
    return [f"{key}: {name!r} reads all-epochs gradients (methods.{name}.gradients: all_epochs), which only a "
            f"text grid's originals record; list it in a grid's methods (e.g. ablations.methods) or set "
            f"methods.{name}.gradients: first_epoch"
            for key, name in used_methods(params) if name in all_epochs and ".methods[" not in key]


MODALITIES.register(TEXT, ModalityRules(TEXT, "token sequences of a text corpus with planted canaries, small GPT-2s",
                                   methods=METHODS, proxies=PROXIES, kinds=KINDS, scores=SCORES,
                                   only_kinds=("canaries",), problems=text_problems))
