"""One cell of an experiment grid: unlearn one forget set, score the result against its oracle.

The driver of the ``<grid>_cell`` stages (docs/methods.md §4-6): a cell is
one (grid, method, group score, kind, strategy, seed) of ``grid.KEYS``; its
forget set and oracle come from its ``<grid>_oracle`` stage.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

from torch import nn

from ..data.splits import ImageSplit
from ..evaluation.report import EvaluateConfig, score_against_oracle
from ..grid import KEYS
from ..partition import PartitionedData
from ..unlearning import UnlearnContext, UnlearnPlan, run_strategy

FORGET_SET_FACTS = ("entanglement_score", "largest_class_share", "planted_noise_in_forget")  # from oracle.json


def run_cell(cell: Mapping[str, Any], original: nn.Module, parts: PartitionedData, test: ImageSplit,
             plan: UnlearnPlan, ctx: UnlearnContext, oracle: nn.Module, oracle_record: Mapping[str, Any],
             evaluate: EvaluateConfig) -> dict[str, Any]:
    """The cell's record: its keys, the unlearned model's and the oracle's metrics (FA/RA/TA, per-subset
    forget accuracy, MIA, ToW, ToW-MIA), unlearning wall seconds beside the oracle's, and the forget set's
    facts from ``oracle_record``. ``original`` is unlearned in place."""
    start = time.perf_counter()
    model, steps = run_strategy(cell["strategy"], original, parts.subsets, parts.retain, plan, ctx)
    seconds = time.perf_counter() - start
    table = score_against_oracle({"unlearned": model, "oracle": oracle}, parts.forget, parts.retain, test,
                                 parts.subsets, ctx.info, evaluate, ctx.device, oracle="oracle").set_index("model")
    return {
        **{k: cell[k] for k in KEYS},
        "unlearned": table.loc["unlearned"].to_dict(), "oracle": table.loc["oracle"].to_dict(),
        "seconds": seconds, "oracle_seconds": oracle_record["seconds"], "forget_size": len(parts.forget),
        "steps": len(steps), **{k: oracle_record.get(k) for k in FORGET_SET_FACTS},
    }
