"""``memunlearn check``'s modality checks: data and model of one modality, and only what applies to it.

One line per problem, naming the key, why and the fix (e.g. ``train.model: 'small_cnn' is an image model but
data.dataset 'pydoc_topics' is a text corpus; set train.model to one of: gpt2_micro, gpt2_tiny``).
"""
from __future__ import annotations

from typing import Any, Mapping

from ..config import nested_value
from ..data import MODALITY_DATASETS, data_modality
from ..models import MODALITY_MODELS, model_modality
from ..registry import UnknownNameError
from .base import DATA_WORDS, MODALITIES, dataset_problems



def modality_problems(params: Mapping[str, Any], *, grids=(), reference_methods: Mapping[str, str] = {},
                      per_subset: bool = False) -> list[str]:
    """Problems of ``params`` (a whole params.yaml) against the modality ``data.dataset`` names.
    ``grids``: the grid sections; ``reference_methods``: rum's methods when unlearn.subset_methods is empty,
    consulted when ``per_subset`` (the strategy takes a method per subset)."""
    dataset = nested_value(params, "data", "dataset") or "mnist_embedded"
    model = nested_value(params, "train", "model") or "small_cnn"
    try:
        modality = data_modality(dataset)
        model_kind = model_modality(model)
    except UnknownNameError:
        return []  # reported by the section's own check
    mismatch = dataset_problems(params)  # the modality param against data.dataset
    if model_kind != modality:
        return mismatch + [f"train.model: {model!r} is {'a language' if model_kind == 'text' else 'an image'} model but "
                f"data.dataset {dataset!r} is {DATA_WORDS.get(modality, modality)}; set train.model to one of: "
                f"{', '.join(MODALITY_MODELS[modality].names())} (or data.dataset to one of: "
                f"{', '.join(MODALITY_DATASETS[model_kind].names())})"]
    entry = MODALITIES.get(modality)
    out = mismatch + list(entry.problems(params))
    blocks = nested_value(params, "methods") or {}

    def registered(name):
        block = blocks.get(name) if isinstance(blocks, Mapping) else None
        return block.get("method", name) if isinstance(block, Mapping) else name

    if entry.methods is not None:
        named = [("unlearn.method", nested_value(params, "unlearn", "method"))]
        subset_methods = nested_value(params, "unlearn", "subset_methods") or {}
        named += [(f"unlearn.subset_methods.{k}", v) for k, v in subset_methods.items()]
        if per_subset and not subset_methods:
            named += [(f"unlearn.subset_methods (empty: rum's reference, {k}: {v})", v)
                      for k, v in reference_methods.items()]
        out += [f"{key}: {name!r} does not apply to {modality} data; choose one of: {', '.join(entry.methods)}"
                for key, name in named if isinstance(name, str) and registered(name) not in entry.methods]
    if entry.proxies is not None:
        names = nested_value(params, "proxies", "names") or []
        out += [f"proxies.names[{i}]: {n!r} does not apply to {modality} data; choose from: "
                f"{', '.join(entry.proxies)} ([] = all of them)"
                for i, n in enumerate(names) if n not in entry.proxies]
    kind = nested_value(params, "partition", "kind")
    kinds = entry.kinds if entry.kinds is not None else [
        k for k in _all_kinds() if not any(k in m.only_kinds for n, m in MODALITIES.items() if n != modality)]
    if isinstance(kind, str) and kind not in kinds:
        out.append(f"partition.kind: {kind!r} does not apply to {modality} data; choose one of: {', '.join(kinds)}")
    if entry.scores is not None:
        scores = [*entry.scores, *(nested_value(params, "proxies", "names") or entry.proxies or ())]
        for key in ("group_score", "refine_score"):
            score = nested_value(params, "partition", key)
            if isinstance(score, str) and score not in scores:
                out.append(f"partition.{key}: {score!r} does not apply to {modality} data; choose one of: "
                           f"{', '.join(scores)}")
    for grid in grids:  # each grid's lists, one line per value that does not apply
        axes = [("methods", entry.methods, registered), ("kinds", kinds, str)]
        if entry.scores is not None:
            axes.append(("group_scores", scores, str))
        for axis, valid, name_of in axes:
            values = nested_value(params, grid, axis)
            out += [f"{grid}.{axis}[{i}]: {v!r} does not apply to {modality} data; choose from: {', '.join(valid)}"
                    for i, v in enumerate(values if isinstance(values, list) else [])
                    if valid is not None and isinstance(v, str) and name_of(v) not in valid]
    return out


def _all_kinds() -> list[str]:
    from ..partition import FORGET_KINDS

    return FORGET_KINDS.names()

