"""One cell of an experiment grid scored against its oracle (the ``grids_evaluate`` stage; docs/methods.md §6).

A cell is one (grid, method, group score, kind, strategy, seed) of
``grid.KEYS``; experiments/grids.py unlearns it and keeps what scoring needs,
so a changed evaluation setting re-scores every cell without unlearning any
again.
"""
from __future__ import annotations

from typing import Any, Mapping

from ..evaluation.report import compare
from ..grid import KEYS


def score_cell(record: Mapping[str, Any], unlearned: Mapping[str, float], oracle: Mapping[str, float]
               ) -> dict[str, Any]:
    """``record`` with the unlearned model's and the oracle's metrics (FA/RA/TA, per-subset forget accuracy, MIA)
    and their ToW and ToW-MIA against the oracle."""
    table = compare({"unlearned": unlearned, "oracle": oracle}, oracle_key="oracle").set_index("model")
    return {**{k: record[k] for k in KEYS}, "unlearned": table.loc["unlearned"].to_dict(),
            "oracle": table.loc["oracle"].to_dict(), **{k: v for k, v in record.items() if k not in KEYS}}
