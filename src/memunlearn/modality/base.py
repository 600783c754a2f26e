"""The modality registry ``MODALITIES``: what makes the one pipeline run on images or on text.

A modality is the kind of data ``data.dataset`` names (data/base.py
``data_modality``: an image dataset or a text corpus) and of model
``train.model`` names (models/base.py ``model_modality``). Its entry says
which registered unlearning methods, proxies and forget-set kinds apply to
it, which params keys do not (``problems``: one line each, naming the key
and the fix, reported by ``memunlearn check``). A stage script runs the
image path in its own body and hands a text run to its module under
modality/text/ (stages/_modality.py): the stage finds the run's modality
in the prepared data (``meta.json``'s ``modality`` key; an image
``meta.json`` has none), so no stage reads a params section it does not
declare, and each stage's DVC deps are the code it runs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from ..registry import Registry

IMAGE = "image"
MODALITY_KEY = "modality"  # in data/prepared/meta.json; absent = image (image meta.json files predate it)


@dataclass(frozen=True)
class StagePaths:
    """Where the stages read and write (stages/_common.py owns the values; dvc.yaml declares the same)."""

    prepared: Path
    train: Path
    memorize: Path
    memorize_store: Path
    memorize_plots: Path
    proxies: Path
    partition: Path
    oracle: Path
    unlearn: Path
    metrics: Path
    results: Path
    sweep: Path | None = None  # the grids' data (data/sweep/<grid>/); results/sweep/<grid>/ under ``results``
    oracle_cache: Path | None = None  # models trained by content (training/oracle.py; text: modality/text/cache.py)
    unlearn_cache: Path | None = None  # unlearning runs by content (unlearning/cache.py)


# a modality's stage: (params of the sections the stage declares, paths, on_row for per-epoch rows) -> the
#   memunlearn.tracking.StageRecord to log (its params are filled in by the stage script)
StageFn = Callable[[Mapping[str, Any], StagePaths, Callable[[Mapping[str, Any]], None]], Any]


@dataclass(frozen=True)
class Modality:
    name: str
    summary: str
    methods: tuple[str, ...] | None = None  # registered unlearning methods that apply; None = every one
    proxies: tuple[str, ...] | None = None  # registered proxies that apply; None = every one
    kinds: tuple[str, ...] | None = None  # forget-set kinds that apply; None = every one but other modalities'
    scores: tuple[str, ...] | None = None  # group/refine scores beside the proxies; None = every one
    only_kinds: tuple[str, ...] = ()  # kinds that apply to this modality alone
    problems: Callable[[Mapping[str, Any]], list[str]] = lambda params: []  # keys that do not apply


MODALITIES: Registry[Modality] = Registry("modality")


def used_method_blocks(params: Mapping[str, Any], method: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(name, block) of each ``methods`` block of registered ``method`` that the run uses: ``method``'s own block,
    unlearn.method's and each one a grid section's ``methods`` list names."""
    def get(*keys):
        node: Any = params
        for key in keys:
            node = node.get(key) if isinstance(node, Mapping) else None
        return node

    blocks = get("methods")
    used = {method, get("unlearn", "method")}
    used |= {m for body in params.values() if isinstance(body, Mapping) and isinstance(body.get("methods"), list)
             for m in body["methods"]}
    for name in sorted(n for n in used if isinstance(n, str)):
        block = blocks.get(name) if isinstance(blocks, Mapping) else None
        if isinstance(block, Mapping) and block.get("method", name) == method:
            yield name, block


def prepared_modality(prepared: Path) -> str:
    """The modality the prepare stage wrote into ``prepared/meta.json`` (image when it names none)."""
    meta = Path(prepared) / "meta.json"
    if not meta.exists():
        return IMAGE
    return json.loads(meta.read_text()).get(MODALITY_KEY, IMAGE)
