"""Prefect flow that runs the experiment sweep: one task per DVC stage, one per sweep cell.

The grid (methods x group scores x forget-set kinds x strategies x seeds) is
written into params.yaml's `sweep` section, as `dvc exp run -S` would; DVC's
matrix stages expand it into one stage per cell and decide which cells
rerun (a cell whose deps and params are unchanged is skipped or restored
from DVC's run cache). Cells run one after another: two reproductions in one
workspace would collide on DVC's lock. Every stage of one flow run is
grouped under one MLflow parent run; the summary table becomes a Prefect
artifact.

    python -m memunlearn.flows.sweep                        # the grid in params.yaml
    python -m memunlearn.flows.sweep --methods neggrad_plus finetune --seeds 0 1 2 3
    python -m memunlearn.flows.sweep --serve                # deployment 'memunlearn-sweep/default'
    prefect deployment run memunlearn-sweep/default -p 'seeds=[0, 1, 2, 3]' -p 'kinds=["low", "mix", "high"]'
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd
import yaml
from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run

from memunlearn.config import from_params
from memunlearn.flows.tasks import (apply_overrides, in_repo, mlflow_group, parse_overrides, project_root,
                                   reproduce_stage, stage_order)
from memunlearn.grid import AXES, SweepConfig

REPORT_STAGE = "sweep_report"
SUMMARY = Path("results/sweep/summary.csv")
FORGET_SET = ("size", "refine_score")  # scalar params -> sweep.partition.<name>


def sweep_stages(repo_dir: str) -> list[str]:
    """`sweep_report` and every stage it depends on (upstream pipeline, oracles, cells), upstream first."""
    with in_repo(repo_dir) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        report = [s for s in graph if getattr(s, "name", None) == REPORT_STAGE]
        if not report:
            raise ValueError(f"dvc.yaml has no stage {REPORT_STAGE!r}; the sweep needs it")
        needed = {s.name for s in nx.descendants(graph, report[0]) if getattr(s, "name", None)} | {REPORT_STAGE}
    return [stage for stage in stage_order(repo_dir) if stage in needed]


def _check_grid(repo_dir: str) -> None:
    """Validate params.yaml's sweep section (registry names, partition keys) before any stage runs."""
    params = yaml.safe_load((Path(repo_dir) / "params.yaml").read_text()) or {}
    config = from_params(SweepConfig, params.get("sweep"), "sweep")
    config.check_methods(params.get("methods") or {})
    missing = [m for m in config.methods if m not in (params.get("methods") or {})]
    if missing:
        raise ValueError(f"params.yaml has no methods.<name> block for {missing}; add one (may be {{}})")


def _publish(summary: pd.DataFrame) -> None:
    columns = ["grid", "method", "group_score", "kind", "strategy", "n_seeds", "tow_mean", "tow_ci95", "tow_mia_mean",
               "tow_mia_ci95", "seconds_mean", "oracle_seconds_mean"]
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in summary[[c for c in columns if c in summary.columns]].to_dict("records")]
    create_table_artifact(rows, key="memunlearn-sweep-summary",
                          description="ToW, ToW-MIA and seconds: mean and t-based 95% CI half-width over seeds")


@flow(name="memunlearn-sweep", log_prints=True)
def sweep(
    methods: list[str] | None = None,
    group_scores: list[str] | None = None,
    kinds: list[str] | None = None,
    strategies: list[str] | None = None,
    seeds: list[int] | None = None,
    size: int | None = None,
    refine_score: str | None = None,
    overrides: dict[str, Any] | None = None,
    repo_dir: str | None = None,
) -> dict[str, Any]:
    """Run the sweep; returns {"ran": {stage: ran}, "summary": rows of results/sweep/summary.csv}.

    methods, group_scores, kinds, strategies, seeds: the grid (None keeps params.yaml's sweep.<name>).
    size, refine_score: every forget set's sweep.partition.<name> (None keeps params.yaml's).
    overrides: other dotted params, e.g. {"methods.finetune.epochs": 3}.
    repo_dir: the DVC project (None: the one holding the working directory).
    """
    repo_dir = repo_dir or str(project_root())
    given = {**{f"sweep.{k}": v for k, v in zip(AXES, (methods, group_scores, kinds, strategies, seeds))},
             **{f"sweep.partition.{k}": v for k, v in zip(FORGET_SET, (size, refine_score))}}
    changes = {k: v for k, v in given.items() if v is not None} | dict(overrides or {})
    params_file = Path(repo_dir) / "params.yaml"
    before = params_file.read_text()
    if changes:
        apply_overrides(repo_dir, changes)
    try:
        _check_grid(repo_dir)
    except (ValueError, KeyError) as exc:
        params_file.write_text(before)  # a bad grid never reaches params.yaml
        raise ValueError(f"bad sweep grid: {exc}") from None

    ran = {}
    with mlflow_group(f"prefect-{flow_run.id or 'local'}", f"prefect {flow_run.name or 'sweep'}"):
        for stage in sweep_stages(repo_dir):
            ran[stage] = reproduce_stage(repo_dir, stage)
    summary = pd.read_csv(Path(repo_dir) / SUMMARY)
    _publish(summary)
    cells = [s for s in ran if s.startswith("sweep_cell@")]
    get_run_logger().info("sweep: %d of %d cells ran, the rest were cached; summary in %s",
                          sum(ran[s] for s in cells), len(cells), SUMMARY)
    return {"ran": ran, "summary": summary.to_dict("records")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in AXES:
        parser.add_argument(f"--{name.replace('_', '-')}", nargs="+", type=int if name == "seeds" else str,
                            metavar="SEED" if name == "seeds" else "NAME", help=f"sweep.{name} (default: params.yaml)")
    parser.add_argument("--size", type=int, help="sweep.partition.size")
    parser.add_argument("--refine-score", help="sweep.partition.refine_score")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any param")
    parser.add_argument("--serve", action="store_true", help="serve as deployment 'memunlearn-sweep/default'")
    args = parser.parse_args()
    if args.serve:
        sweep.serve(name="default", description="memunlearn experiment sweep; parameters: the grid "
                                                "(methods, group_scores, kinds, strategies, seeds), size, "
                                                "refine_score, overrides")
        return
    grid = {name: getattr(args, name) for name in (*AXES, *FORGET_SET)}
    result = sweep(**grid, overrides=parse_overrides(args.set))
    print(json.dumps({stage: did for stage, did in result["ran"].items() if did}, indent=2))
    print(pd.DataFrame(result["summary"]).to_string(index=False))


if __name__ == "__main__":
    main()
