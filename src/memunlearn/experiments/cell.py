"""One cell of an experiment grid: unlearn one forget set; score it against its oracle (a separate step).

What the ``grids`` stage runs per cell (docs/methods.md §4-6): a cell
is one (grid, method, group score, kind, strategy, seed) of ``grid.KEYS``;
its forget set and oracle are chosen and trained once per (score, kind,
seed) by the same stage. ``run_cell``
unlearns and keeps the unlearned model's outputs; ``score_cell`` (the
``sweep_score`` stage) turns them and the oracle's into metrics, so a changed
evaluation setting re-scores every cell without unlearning any again.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from torch import nn

from ..data.splits import ImageSplit
from ..evaluation.report import ModelOutputs, compare, model_outputs
from ..grid import KEYS
from ..partition import PartitionedData
from ..unlearning import UnlearnContext, UnlearnPlan
from ..unlearning.cache import cached_strategy

FORGET_SET_FACTS = ("entanglement_score", "largest_class_share", "planted_noise_in_forget")  # from oracle.json


def run_cell(cell: Mapping[str, Any], original: nn.Module, parts: PartitionedData, test: ImageSplit,
             plan: UnlearnPlan, ctx: UnlearnContext, oracle_record: Mapping[str, Any], cache: Path | None = None
             ) -> tuple[dict[str, Any], ModelOutputs]:
    """The cell's record (its keys, unlearning wall seconds beside the oracle's, the forget set's facts from
    ``oracle_record``) and the unlearned model's outputs. ``original`` is unlearned in place; ``cache``: the
    unlearning cache (``unlearning/cache.py``), where the ``unlearn`` stage's identical run is found."""
    model, steps, seconds, cached = cached_strategy(cell["strategy"], original, parts.subsets, parts.retain, plan,
                                                    ctx, cache)
    outputs = model_outputs(model, parts.forget, parts.retain, test, parts.subsets, ctx.info, ctx.device)
    record = {
        **{k: cell[k] for k in KEYS},
        "seconds": seconds, "cached": cached, "oracle_seconds": oracle_record["seconds"],
        "forget_size": len(parts.forget), "steps": len(steps), **{k: oracle_record.get(k) for k in FORGET_SET_FACTS},
    }
    return record, outputs


def score_cell(record: Mapping[str, Any], unlearned: Mapping[str, float], oracle: Mapping[str, float]
               ) -> dict[str, Any]:
    """``record`` with the unlearned model's and the oracle's metrics (``output_metrics``: FA/RA/TA, per-subset
    forget accuracy, MIA) and their ToW and ToW-MIA against the oracle."""
    table = compare({"unlearned": unlearned, "oracle": oracle}, oracle_key="oracle").set_index("model")
    return {**{k: record[k] for k in KEYS}, "unlearned": table.loc["unlearned"].to_dict(),
            "oracle": table.loc["oracle"].to_dict(), **{k: v for k, v in record.items() if k not in KEYS}}
