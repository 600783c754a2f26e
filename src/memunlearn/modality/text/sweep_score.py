"""Stage ``sweep_score`` on text: every grid cell against its forget set's oracle, ToW and ToW-MIA on next-token
accuracy (experiments/cell.py ``score_cell``). The text grid measured each model already (canary exposure needs
the model, not stored outputs: modality/text/grid.py), so this stage only compares; the MIA subsample was drawn
from the cell's seed."""
from __future__ import annotations

from typing import Any, Mapping

from ...config import from_params
from ...experiments.cell import score_cell
from ...grid import GRIDS, SweepConfig, cell_name, forget_set_name
from ...io import load_json, save_json
from ...tracking import StageRecord
from ..base import StagePaths


def run(params: Mapping[str, Any], paths: StagePaths, on_row=None) -> StageRecord:
    scored, oracles = [], {}
    for grid in GRIDS:
        for cell in from_params(SweepConfig, params[grid], grid).cells(grid).to_dict("records"):
            name, folder, stage = cell_name(cell), paths.sweep / grid / forget_set_name(cell), "grids"
            if folder not in oracles:
                oracles[folder] = load_json(folder / "metrics.json", stage)
            unlearned = load_json(paths.sweep / grid / "cells" / f"{name}.json", stage)
            record = load_json(paths.results / "sweep" / grid / f"{name}.json", stage)
            scored.append(score_cell(record, unlearned, oracles[folder]))
    out = paths.results / "sweep" / "cells.json"
    save_json(scored, out)
    return StageRecord("sweep_score", metrics={"cells": len(scored), "oracles": len(oracles)}, artifacts=[out])
