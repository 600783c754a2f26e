"""Prefect flow that runs the experiment grids: one task per DVC stage, or the grid as one DVC experiment.

The grid (methods x group scores x forget-set kinds x strategies x seeds)
is params.yaml's `ablations` section, run with the other grids by the DVC
stage `grids`; DVC decides whether it reruns, and a rerun loads every
forget set, oracle and cell it computed before from the content-keyed
caches, so only new cells compute. Without grid
arguments or overrides the flow reproduces the workspace, one task per
stage; with them the grids run as a DVC experiment (`dvc exp run --temp -S
...`): params.yaml stays untouched and `dvc exp show` lists the run. Stages
run one after another and one flow run at a time holds the checkout (two
reproductions in one workspace would collide on DVC's lock). Every stage of
one flow run logs under one MLflow parent run; the summary table and a link
to that run become the flow run's Prefect artifact.

    python -m flows.grids                        # the grids in params.yaml, in the workspace
    python -m flows.grids --methods neggrad_plus finetune --seeds 0 1 2 3    # a DVC experiment
    python -m flows.grids --serve                # deployment 'memunlearn-grids/default'
    prefect deployment run memunlearn-grids/default -p 'seeds=[0, 1, 2, 3]' -p 'kinds=["low", "mix", "high"]'
"""
from __future__ import annotations

import argparse
import io
import json
from typing import Any

import networkx as nx
import pandas as pd
from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.tasks import (check_params, experiment_name, in_repo, mlflow_parent, one_run_per_checkout,
                         parse_overrides, progress, project_root, publish, read_output, reproduce_stage,
                         run_experiment, stage_order)
from memunlearn.grid import AXES

REPORT_STAGE = "grids_report"
SUMMARY = "results/grids/summary.csv"
FORGET_SET = ("size", "refine_score")  # scalar params -> ablations.partition.<name>
SUMMARY_COLUMNS = ["grid", "method", "group_score", "kind", "strategy", "n_seeds", "tow_mean", "tow_ci95",
                   "tow_mia_mean", "tow_mia_ci95", "seconds_mean", "oracle_seconds_mean"]


def grid_stages(repo_dir: str) -> list[str]:
    """`grids_report` and every stage it depends on (upstream pipeline, oracles, cells), upstream first."""
    with in_repo(repo_dir) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        report = [s for s in graph if getattr(s, "name", None) == REPORT_STAGE]
        if not report:
            raise ValueError(f"dvc.yaml has no stage {REPORT_STAGE!r}; the grids flow needs it")
        needed = {s.name for s in nx.descendants(graph, report[0]) if getattr(s, "name", None)} | {REPORT_STAGE}
    return [stage for stage in stage_order(repo_dir) if stage in needed]


@flow(name="memunlearn-grids", log_prints=True)
def grids(
    methods: list[str] | None = None,
    group_scores: list[str] | None = None,
    kinds: list[str] | None = None,
    strategies: list[str] | None = None,
    seeds: list[int] | None = None,
    size: int | None = None,
    refine_score: str | None = None,
    overrides: dict[str, Any] | None = None,
    repo_dir: str | None = None,
    experiment: str | None = None,
) -> dict[str, Any]:
    """Run the grids; returns {"ran": {stage: ran}, "summary": rows of results/grids/summary.csv, "experiment"}.

    methods, group_scores, kinds, strategies, seeds: the grid (None keeps params.yaml's ablations.<name>).
    size, refine_score: every forget set's ablations.partition.<name> (None keeps params.yaml's).
    overrides: other dotted params, e.g. {"methods.finetune.epochs": 3}.
    Any of these makes the run a DVC experiment, named ``experiment`` (None: the flow run's name and id).
    repo_dir: the DVC project (None: the one holding the working directory).
    """
    repo_dir = str(repo_dir or project_root())
    given = {**{f"ablations.{k}": v for k, v in zip(AXES, (methods, group_scores, kinds, strategies, seeds))},
             **{f"ablations.partition.{k}": v for k, v in zip(FORGET_SET, (size, refine_score))}}
    changes = {k: v for k, v in given.items() if v is not None} | dict(overrides or {})
    try:
        check_params(repo_dir, changes)
    except ValueError as exc:
        raise ValueError(f"bad grid: {exc}") from None
    name = (experiment or experiment_name()) if changes else None
    stages = grid_stages(repo_dir)
    with one_run_per_checkout(repo_dir), mlflow_parent(repo_dir, name or f"grids {flow_run.name}", name) as (
            env, link):
        if name:
            ran = run_experiment(repo_dir, name, changes, [REPORT_STAGE], stages, env)
        else:
            ran = {stage: reproduce_stage(repo_dir, stage, env=env) for stage in progress(stages)}
    text = read_output(repo_dir, SUMMARY, name)
    summary = pd.read_csv(io.StringIO(text)) if text else pd.DataFrame(columns=SUMMARY_COLUMNS)
    publish("memunlearn-grids-summary", f"memunlearn-grids {name or 'workspace'}: ToW, ToW-MIA and seconds, mean "
            "and t-based 95% CI half-width over seeds", summary[[c for c in SUMMARY_COLUMNS if c in summary]],
            link, name)
    get_run_logger().info("the grids %s (computing only new cells); summary in %s%s",
                          "ran" if ran.get("grids") else "were unchanged", SUMMARY,
                          f" of experiment {name}" if name else "")
    return {"ran": ran, "summary": summary.to_dict("records"), "experiment": name}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in AXES:
        parser.add_argument(f"--{name.replace('_', '-')}", nargs="+", type=int if name == "seeds" else str,
                            metavar="SEED" if name == "seeds" else "NAME", help=f"ablations.{name} (default: params.yaml)")
    parser.add_argument("--size", type=int, help="ablations.partition.size")
    parser.add_argument("--refine-score", help="ablations.partition.refine_score")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any param")
    parser.add_argument("--name", help="the DVC experiment's name (default: the flow run's)")
    parser.add_argument("--serve", action="store_true", help="serve as deployment 'memunlearn-grids/default'")
    args = parser.parse_args()
    if args.serve:
        grids.serve(name="default", description="memunlearn experiment grids; parameters: the grid "
                                      "(methods, group_scores, kinds, strategies, seeds), size, "
                                      "refine_score, overrides")
        return
    grid = {name: getattr(args, name) for name in (*AXES, *FORGET_SET)}
    result = grids(**grid, overrides=parse_overrides(args.set), experiment=args.name)
    print(json.dumps({stage: did for stage, did in result["ran"].items() if did}, indent=2))
    print(pd.DataFrame(result["summary"]).to_string(index=False))


if __name__ == "__main__":
    main()
